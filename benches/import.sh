#!/usr/bin/env bash
# Benchmark of `outreach import customers` with 100,000 customers, on SQLite
# and on PostgreSQL. Run by hand (not in CI), from any directory:
#
#   benches/import.sh
#
# For each backend and each run it measures, on the same generated rows:
#   baseline   the database's own bulk loader into a plain table of text
#              columns: `sqlite3 .import` (WAL, synchronous=FULL, fresh file)
#              or psql `\copy` (fresh database);
#   first      `outreach import customers` of the UTF-8 CSV into a fresh
#              database (all new);
#   reimport   the same file again (all unchanged);
#   cp1252     the same rows as German Excel saves them (Windows-1252, CRLF,
#              made with iconv) into a fresh database: encoding detection
#              and decoding;
#   xlsx       the same rows as an .xlsx workbook LibreOffice made from the
#              CSV (German locale: dates are date cells) into a fresh database.
# `vs UTF-8 CSV` = first_s / case_s for the last two; `CPU vs CSV` the same
# for the CPU time of the outreach process (on SQLite that includes the
# database's work; on PostgreSQL the server's is not counted).
# Each command runs under `/usr/bin/time -v` (peak RSS), timed by the clock
# around it (wall time). The table shows the median time over the runs,
# rows/s, `vs baseline` = baseline_s / case_s (1.00 = as fast as the bulk
# loader, 0.10 = ten times slower), `x slower` = case_s / baseline_s, and the
# highest peak RSS of the measured process over the runs. For PostgreSQL the
# RSS is that of the client process (psql or outreach), not of the server.
# The outreach times include process start, reading the config and checking
# migrations (a fresh database is migrated before timing).
#
# Environment:
#   BENCH_ROWS          rows to generate (default 100000)
#   BENCH_RUNS          runs per case (default 3; drops to 1 if the first run
#                       suggests more than ~5 minutes in total)
#   BENCH_POSTGRES_URL  server to use (default postgres://postgres@127.0.0.1:5432/test);
#                       a database outreach_bench_<random>_{copy,app} is
#                       created there and dropped again. `none` skips PostgreSQL.
#   BENCH_KEEP=1        keep the temp folder (CSV, configs, databases) for inspection
#   BENCH_BUDGET        seconds all runs may take before only one is made (default 300)
#
# Needs cargo, python3, iconv, psql (for PostgreSQL); installs the Debian
# packages `sqlite3`, `time` and `libreoffice-calc-nogui` (for the .xlsx)
# with apt-get when they are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
ROWS=${BENCH_ROWS:-100000}
RUNS=${BENCH_RUNS:-3}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
BUDGET_SECONDS=${BENCH_BUDGET:-300}

# --- tools --------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is needed to generate the CSV"
command -v sqlite3 >/dev/null || apt_install sqlite3
[[ -x /usr/bin/time ]] || apt_install time
command -v soffice >/dev/null || apt_install libreoffice-calc-nogui
command -v iconv >/dev/null || die "iconv is needed for the Windows-1252 file"

# --- temp folder and clean-up -------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/outreach-bench.XXXXXX")
PG_DBS=()
cleanup() {
    local status=$?
    set +e
    drop_pg_dbs
    remove_work
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

plain_env

# --- build ---------------------------------------------------------------------

build_outreach

# --- PostgreSQL available? -----------------------------------------------------

BACKENDS=(sqlite)
PG_NOTE=""
if [[ $PG_URL == none ]]; then
    PG_NOTE="PostgreSQL skipped (BENCH_POSTGRES_URL=none)"
elif ! command -v psql >/dev/null; then
    PG_NOTE="PostgreSQL skipped: psql is not installed"
elif ! PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    PG_NOTE="PostgreSQL skipped: $PG_URL is unreachable"
else
    BACKENDS+=(postgres)
    PG_BASE="outreach_bench_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
fi
[[ -z $PG_NOTE ]] || log "note: $PG_NOTE"

pg_fresh_db() { # name
    PG_DBS+=("$1")
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $1" >/dev/null
}

# --- the CSV -------------------------------------------------------------------

CSV="$WORK/customers.csv"
log "generating $ROWS customers in $CSV"
python3 "$ROOT/benches/customers.py" "$CSV" "$ROWS"
log "CSV: $(du -h "$CSV" | cut -f1), $(($(wc -l <"$CSV") - 1)) rows"
CP1252="$WORK/customers-cp1252.csv"
sed 's/$/\r/' "$CSV" | iconv -f UTF-8 -t WINDOWS-1252 >"$CP1252"
log "Windows-1252 CSV: $(du -h "$CP1252" | cut -f1)"
XLSX="$WORK/customers.xlsx"
log "LibreOffice makes $XLSX (takes a while)"
# CSV filter: ";" (59), '"' (34), UTF-8 (76), from row 1, standard formats,
# German locale (1031), quoted cells as text: no, dates detected: yes.
soffice -env:UserInstallation="file://$WORK/lo-profile" --headless --norestore \
    --infilter="CSV:59,34,76,1,,1031,false,true" --convert-to xlsx --outdir "$WORK" "$CSV" >/dev/null 2>&1 ||
    die "LibreOffice could not convert $CSV to .xlsx"
[[ -s $XLSX ]] || die "LibreOffice wrote no $XLSX"
log ".xlsx: $(du -h "$XLSX" | cut -f1)"
COLUMNS_SQL=$(head -n1 "$CSV" | tr -d '\r' | sed 's/;/ TEXT, /g; s/$/ TEXT/')

# --- config --------------------------------------------------------------------

write_config() { # file db_url
    cat >"$1" <<EOF
[business]
name = "Café Bench"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Bench <hallo@cafe-bench.example>"
postal_address = "Benchstraße 1, 50667 Köln"
base_url = "http://127.0.0.1:8080"

[database]
url = "$2"

[mail]
file_dir = "$WORK/outbox"

[templates]
dir = "$ROOT/templates"

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-bench.example"

[[staff]]
id = "jonas"
name = "Jonas"
email = "jonas@cafe-bench.example"
manager = "maria"
EOF
}

# --- measuring -----------------------------------------------------------------

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure backend case run expected_stdout_regex -- command...
# Runs the command under /usr/bin/time -v and appends seconds and peak RSS.
measure() {
    local backend=$1 case=$2 run=$3 expect=$4
    shift 5
    local tv="$WORK/time.txt" out="$WORK/out.txt" t0 t1
    t0=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$tv" "$@" >"$out" 2>&1; then
        cat "$out" >&2
        die "$backend/$case failed: $*"
    fi
    t1=$(date +%s.%N)
    if [[ -n $expect ]] && ! grep -Eq "$expect" "$out"; then
        cat "$out" >&2
        die "$backend/$case: output does not match /$expect/"
    fi
    local secs rss cpu
    # wall time from the clock (ms precision; time -v only gives 1/100 s)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")
    # CPU time of the measured process (user + system): on a busy machine
    # it varies far less than the wall time.
    cpu=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$tv")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$case" "$run" "$secs" "$rss" "$cpu" >>"$RESULTS"
    log "  $backend $case run $run: ${secs} s (CPU ${cpu} s), peak RSS $((rss / 1024)) MB"
}

check_count() { # what actual
    [[ $2 == "$ROWS" ]] || die "$1 holds $2 rows, expected $ROWS"
}

run_sqlite() { # run
    local run=$1 dir="$WORK/sqlite-$1"
    mkdir -p "$dir"
    # (a) baseline: sqlite3 .import into a plain table, fresh file, same pragmas as outreach
    cat >"$dir/import.sql" <<EOF
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE customers_raw ($COLUMNS_SQL);
.mode csv
.separator ;
.import --skip 1 "$CSV" customers_raw
EOF
    measure sqlite baseline "$run" "" -- sqlite3 -bail "$dir/baseline.db" ".read $dir/import.sql"
    check_count "sqlite baseline table" "$(sqlite3 "$dir/baseline.db" 'SELECT count(*) FROM customers_raw')"
    # (b) first import, (c) re-import
    write_config "$dir/outreach.toml" "sqlite://$dir/outreach.db"
    "$BIN" --config "$dir/outreach.toml" migrate >/dev/null
    measure sqlite first "$run" "imported $ROWS, updated 0, unchanged 0, rejected 0" -- \
        "$BIN" --config "$dir/outreach.toml" import customers "$CSV"
    measure sqlite reimport "$run" "imported 0, updated 0, unchanged $ROWS, rejected 0" -- \
        "$BIN" --config "$dir/outreach.toml" import customers "$CSV"
    check_count "sqlite customers table" "$(sqlite3 "$dir/outreach.db" 'SELECT count(*) FROM customers')"
    # (d) the same rows from the other formats, each into a fresh database
    local case file
    for case in cp1252 xlsx; do
        file=$CP1252
        [[ $case == xlsx ]] && file=$XLSX
        write_config "$dir/$case.toml" "sqlite://$dir/$case.db"
        "$BIN" --config "$dir/$case.toml" migrate >/dev/null
        measure sqlite "$case" "$run" "imported $ROWS, updated 0, unchanged 0, rejected 0" -- \
            "$BIN" --config "$dir/$case.toml" import customers "$file"
    done
    rm -rf "$dir"
}

run_postgres() { # run
    local run=$1 dir="$WORK/postgres-$1"
    local copy_db="${PG_BASE}_copy" app_db="${PG_BASE}_app"
    local copy_url app_url
    copy_url=$(pg_url_for "$copy_db")
    app_url=$(pg_url_for "$app_db")
    mkdir -p "$dir"
    # (a) baseline: \copy into a plain table of text columns in a fresh database
    pg_fresh_db "$copy_db"
    psql "$copy_url" -qAt -v ON_ERROR_STOP=1 -c "CREATE TABLE customers_raw ($COLUMNS_SQL)"
    measure postgres baseline "$run" "" -- psql "$copy_url" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy customers_raw FROM '$CSV' WITH (FORMAT csv, DELIMITER ';', HEADER true, ENCODING 'UTF8')"
    check_count "postgres baseline table" "$(psql "$copy_url" -qAtc 'SELECT count(*) FROM customers_raw')"
    # (b) first import, (c) re-import
    pg_fresh_db "$app_db"
    write_config "$dir/outreach.toml" "$app_url"
    "$BIN" --config "$dir/outreach.toml" migrate >/dev/null
    measure postgres first "$run" "imported $ROWS, updated 0, unchanged 0, rejected 0" -- \
        "$BIN" --config "$dir/outreach.toml" import customers "$CSV"
    measure postgres reimport "$run" "imported 0, updated 0, unchanged $ROWS, rejected 0" -- \
        "$BIN" --config "$dir/outreach.toml" import customers "$CSV"
    check_count "postgres customers table" "$(psql "$app_url" -qAtc 'SELECT count(*) FROM customers')"
    # (d) the same rows from the other formats, each into a fresh database
    local case file
    for case in cp1252 xlsx; do
        file=$CP1252
        [[ $case == xlsx ]] && file=$XLSX
        pg_fresh_db "$app_db"
        write_config "$dir/$case.toml" "$app_url"
        "$BIN" --config "$dir/$case.toml" migrate >/dev/null
        measure postgres "$case" "$run" "imported $ROWS, updated 0, unchanged 0, rejected 0" -- \
            "$BIN" --config "$dir/$case.toml" import customers "$file"
    done
    rm -rf "$dir"
}

started=$SECONDS
for ((run = 1; run <= RUNS; run++)); do
    log "run $run of $RUNS"
    for backend in "${BACKENDS[@]}"; do
        "run_$backend" "$run"
    done
    if ((run == 1 && RUNS > 1 && (SECONDS - started) * RUNS > BUDGET_SECONDS)); then
        log "note: one run took $((SECONDS - started))s; $RUNS runs would exceed ~${BUDGET_SECONDS}s, stopping after 1"
        RUNS=1
    fi
done

# --- report --------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no -- src migrations Cargo.toml Cargo.lock 2>/dev/null) ]] ||
    commit="$commit+uncommitted changes"
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
pg_version=""
[[ " ${BACKENDS[*]} " != *" postgres "* ]] || pg_version=$(psql "$PG_URL" -qAtc 'SHOW server_version')

echo
echo "outreach import customers: $ROWS rows, $(date -u +%Y-%m-%d), commit $commit"
echo "machine: $(nproc) cores ($cpu), $mem RAM; sqlite3 $(sqlite3 --version | cut -d' ' -f1)${pg_version:+, PostgreSQL $pg_version}"
echo "median of $RUNS run(s); vs baseline = baseline_s / case_s (higher is better, 1.00 = bulk loader speed),"
echo "x slower = case_s / baseline_s;"
echo "peak RSS = highest over the runs, of the client process (psql/sqlite3/outreach)"
[[ -z $PG_NOTE ]] || echo "$PG_NOTE"
echo
python3 - "$RESULTS" "$ROWS" <<'EOF'
import statistics, sys
from collections import defaultdict

path, rows = sys.argv[1], int(sys.argv[2])
secs, rss, cpu = defaultdict(list), defaultdict(list), defaultdict(list)
for line in open(path):
    backend, case, _run, s, kb, c = line.rstrip("\n").split("\t")
    secs[backend, case].append(float(s))
    rss[backend, case].append(int(kb))
    cpu[backend, case].append(float(c))
label = {"baseline": None, "first": "import, first (all new)", "reimport": "import, again (unchanged)",
         "cp1252": "import, first, Windows-1252", "xlsx": "import, first, .xlsx"}
loader = {"sqlite": "sqlite3 .import (baseline)", "postgres": "psql \\copy (baseline)"}
print(f"{'backend':<9} {'case':<27} {'seconds':>8} {'rows/s':>9} {'vs baseline':>11} {'x slower':>8} "
      f"{'vs UTF-8 CSV':>12} {'CPU s':>6} {'CPU vs CSV':>10} {'peak RSS MB':>11}")
for backend in ("sqlite", "postgres"):
    if (backend, "baseline") not in secs:
        continue
    base = statistics.median(secs[backend, "baseline"])
    first = statistics.median(secs[backend, "first"])
    first_cpu = statistics.median(cpu[backend, "first"])
    for case in ("baseline", "first", "reimport", "cp1252", "xlsx"):
        s = statistics.median(secs[backend, case])
        c = statistics.median(cpu[backend, case])
        ratio = base / s if s > 0 else float("inf")
        name = label[case] or loader[backend]
        compared = case in ("first", "cp1252", "xlsx")
        vs_csv = f"{first / s:.2f}" if compared else ""
        cpu_vs_csv = f"{first_cpu / c:.2f}" if compared and c > 0 else ""
        print(f"{backend:<9} {name:<27} {s:>8.2f} {rows / s if s else float('inf'):>9.0f} "
              f"{ratio:>11.3f} {s / base:>8.1f} {vs_csv:>12} {c:>6.2f} {cpu_vs_csv:>10} "
              f"{max(rss[backend, case]) / 1024:>11.1f}")
EOF
