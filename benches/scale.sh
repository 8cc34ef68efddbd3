#!/usr/bin/env bash
# Scale benchmark: 1,000,000 customers, on SQLite and on PostgreSQL. Run by
# hand (not in CI), from any directory:
#
#   benches/scale.sh
#
# Per backend, in one fresh database:
#   load       the customers into the database: `outreach import customers`
#              of a generated CSV (BENCH_LOAD=import, the default), or the
#              database's bulk loader straight into the `customers` table
#              (BENCH_LOAD=bulk: `sqlite3 .import` / psql `\copy` of rows in
#              outreach's own column formats), when the import is too slow
#              to wait for;
#   baseline   in the same database, timed by the database's own client:
#              (a) `CREATE TABLE … AS SELECT * FROM customers` (a plain copy);
#              (b) `INSERT INTO … SELECT … FROM customers`: one outbox-shaped
#                  row per customer (planned or suppressed by consent) into a
#                  copy of the `messages` table with its keys and indexes —
#                  what planning writes, without deciding anything. This is
#                  the baseline the ratios are computed against;
#   planning   `outreach run` (release build, file transport into a tmpfs
#              folder) is started and waits; the clock starts before
#              `outreach runs start bench` and stops when the run leaves
#              `planning` (polled with the database's client every 0.1 s).
#              The campaign needs approval, so the run stops in
#              `awaiting_approval` right after planning: nothing is sent.
#              Its audience matches every customer, so every customer is
#              evaluated, checked for consent and against the frequency cap
#              (the default 2/7d), and gets an outbox row (planned, or
#              suppressed with the reason). Also reported: start → the
#              daemon's log line "run planned" (excludes the approval request
#              and the up-to-1-s pickup of the run by the daemon's poll);
#   memory     the daemon's peak RSS (VmHWM in /proc/PID/status) read right
#              after the run left planning; the import's peak RSS from
#              /usr/bin/time. For PostgreSQL the server's memory is not
#              included.
# Targets: planning at most 1.5 x the INSERT…SELECT base, daemon peak RSS
# under 100 MB.
#
# Environment:
#   BENCH_ROWS          customers (default 1000000)
#   BENCH_LOAD          import (default) | bulk — see above
#   BENCH_BACKENDS      "sqlite postgres" (default) or one of them
#   BENCH_POSTGRES_URL  server (default postgres://postgres@127.0.0.1:5432/test);
#                       a database outreach_scale_<random> is created there and
#                       dropped again. `none` skips PostgreSQL.
#   BENCH_KEEP=1        keep the temp folder (CSV, configs, SQLite files, logs)
#   BENCH_PERF=1        record the daemon with `perf record` while it plans
#                       and print where its time went (needs perf; the
#                       recording slows planning a little, so the timings of
#                       such a run are not the figures to quote)
#
# Needs cargo, python3, sqlite3, psql (for PostgreSQL), /usr/bin/time, curl.
#
# The figures, what moved them and where the time still goes are in
# benches/README.md, "A million customers".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
ROWS=${BENCH_ROWS:-1000000}
LOAD=${BENCH_LOAD:-import}
BACKENDS_WANTED=${BENCH_BACKENDS:-sqlite postgres}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

[[ $LOAD == import || $LOAD == bulk ]] || die "BENCH_LOAD must be import or bulk"
for tool in python3 sqlite3 curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (Debian package time)"

# --- temp folders and clean-up ---------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/outreach-scale.XXXXXX")
# The outbox (one approval email per run) on tmpfs, so the disk is the database's.
OUTBOX=$(mktemp -d /dev/shm/outreach-scale-outbox.XXXXXX)
PG_DBS=()
DAEMON_PID=""
cleanup() {
    local status=$?
    set +e
    [[ -z $DAEMON_PID ]] || { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; }
    drop_pg_dbs
    rm -rf "$OUTBOX"
    remove_work
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

plain_env

# --- build -----------------------------------------------------------------------

build_outreach

# --- backends --------------------------------------------------------------------

BACKENDS=()
PG_NOTE=""
for b in $BACKENDS_WANTED; do
    case $b in
    sqlite) BACKENDS+=(sqlite) ;;
    postgres)
        if [[ $PG_URL == none ]]; then
            PG_NOTE="PostgreSQL skipped (BENCH_POSTGRES_URL=none)"
        elif ! command -v psql >/dev/null; then
            PG_NOTE="PostgreSQL skipped: psql is not installed"
        elif ! PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
            PG_NOTE="PostgreSQL skipped: $PG_URL is unreachable"
        else
            BACKENDS+=(postgres)
        fi
        ;;
    *) die "unknown backend $b" ;;
    esac
done
[[ -z $PG_NOTE ]] || log "note: $PG_NOTE"

# --- the customers ------------------------------------------------------------------

# gen_customers MODE FILE: MODE csv = the import's CSV; MODE sqlite/postgres =
# rows in the customers table's own column formats for the bulk loaders.
gen_customers() {
    python3 - "$1" "$2" "$ROWS" <<'EOF'
import csv, datetime as dt, json, random, sys

mode, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(20250101)  # the same customers every time
first = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Ismail",
         "Jana", "Jürgen", "Katharina", "Lukas", "Marie", "Niklas", "Olga", "Paul", "Sophie"]
last = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Koch", "Richter", "Yılmaz", "Kaya", "Nowak", "Wong", "Groß"]
tag_sets = [[], ["newsletter"], ["stammgast"], ["newsletter", "stammgast"], ["mittagstisch"]]
tiers = ["Bronze", "Silber", "Gold", ""]
# sqlx writes SQLite timestamps as RFC 3339 text
stamp = "2025-06-01T12:00:00+00:00" if mode == "sqlite" else "2025-06-01 12:00:00+00"

def day(a, b):
    start = dt.date(a, 1, 1)
    return start + dt.timedelta(days=rnd.randrange((dt.date(b, 12, 31) - start).days))

with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, delimiter=";" if mode == "csv" else ",", lineterminator="\n")
    if mode == "csv":
        w.writerow(["external_id", "email", "name", "locale", "timezone", "consent", "tags",
                    "points", "tier", "customer_since", "birthday", "stadtteil"])
    for i in range(rows):
        fn, ln = rnd.choice(first), rnd.choice(last)
        english = rnd.random() < 0.12
        consent = rnd.random() < 0.6
        tags = rnd.choice(tag_sets)
        since, born = day(2005, 2024), day(1940, 2005)
        points, tier = rnd.randrange(0, 3000), rnd.choice(tiers)
        email = f"kunde{i}@example.de"
        if mode == "csv":
            w.writerow([f"K-{i}", email, f"{fn} {ln}", "en" if english else "de",
                        "Europe/London" if english else "Europe/Berlin",
                        "ja" if consent else "nein", ";".join(tags), points, tier,
                        since.isoformat(), born.isoformat(), "Ehrenfeld"])
        else:
            b = (lambda v: "1" if v else "0") if mode == "sqlite" else (lambda v: "t" if v else "f")
            # external_id,email,name,locale,timezone,consent,consent_at,consent_source,
            # tags,points,tier,customer_since,birthday,attributes,created_at,updated_at
            w.writerow([f"K-{i}", email, f"{fn} {ln}", "en" if english else "de",
                        "Europe/London" if english else "Europe/Berlin", b(consent),
                        stamp if consent else "", "bench" if consent else "",
                        json.dumps(tags), points, tier or "", since.isoformat(),
                        born.isoformat(), json.dumps({"stadtteil": "Ehrenfeld"}), stamp, stamp])
EOF
}
BULK_COLUMNS="external_id,email,name,locale,timezone,consent,consent_at,consent_source,tags,points,tier,customer_since,birthday,attributes,created_at,updated_at"

# --- config --------------------------------------------------------------------------

write_config() { # file db_url port
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
transport = "file"
file_dir = "$OUTBOX"

[http]
listen = "127.0.0.1:$3"

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

# Never fires by itself; started by hand. The audience matches everyone.
[[campaign]]
id = "bench"
kind = "status_update"
schedule = "0 3 29 2 *"
audience = 'points >= 0 or "newsletter" in tags'
template = "status_update"
approval = "required"
approvers = ["maria"]
approval_timeout = "24h"
EOF
}

# --- measuring ------------------------------------------------------------------------

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { # backend step rows seconds rss_kb
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    log "  $1 $2: $4 s${5:+, peak RSS $(($5 / 1024)) MB}"
}

# sql BACKEND TARGET STATEMENT…: runs statements with the database's client.
sql() {
    local backend=$1 target=$2
    shift 2
    if [[ $backend == sqlite ]]; then
        sqlite3 -bail "$target" ".timeout 30000" "$@" >/dev/null
    else
        local args=()
        for s in "$@"; do args+=(-c "$s"); done
        psql "$target" -qAt -v ON_ERROR_STOP=1 "${args[@]}" >/dev/null
    fi
}
query() { # backend target statement → one value
    if [[ $1 == sqlite ]]; then
        sqlite3 "$2" ".timeout 30000" "$3"
    else
        psql "$2" -qAt -v ON_ERROR_STOP=1 -c "$3"
    fi
}
# timed BACKEND TARGET STATEMENT…: seconds of the statements (client start included, ~ms).
timed() {
    local t0 t1
    t0=$(now)
    sql "$@"
    t1=$(now)
    elapsed "$t0" "$t1"
}

# cpu_ticks PID: the process's user + system time so far, in clock ticks.
run_backend() { # backend
    local backend=$1 dir="$WORK/$1" url target port
    mkdir -p "$dir"
    if [[ $backend == sqlite ]]; then
        url="sqlite://$dir/outreach.db"
        target="$dir/outreach.db"
    else
        local db
        db="outreach_scale_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
        PG_DBS+=("$db")
        psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
        url=$(pg_url_for "$db")
        target=$url
    fi
    port=$(free_port)
    write_config "$dir/outreach.toml" "$url" "$port"
    "$BIN" --config "$dir/outreach.toml" migrate >/dev/null

    # load
    if [[ $LOAD == import ]]; then
        log "$backend: outreach import customers ($ROWS rows)"
        local t0 t1 tv="$dir/time.txt"
        t0=$(now)
        /usr/bin/time -v -o "$tv" "$BIN" --config "$dir/outreach.toml" import customers "$CSV" >"$dir/import.out" 2>&1 ||
            { cat "$dir/import.out" >&2; die "$backend: import failed"; }
        t1=$(now)
        grep -q "imported $ROWS, updated 0, unchanged 0, rejected 0" "$dir/import.out" ||
            { cat "$dir/import.out" >&2; die "$backend: unexpected import result"; }
        record "$backend" "load: outreach import customers" "$ROWS" "$(elapsed "$t0" "$t1")" \
            "$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")"
    else
        log "$backend: generating bulk rows and loading them with the database's loader"
        gen_customers "$backend" "$dir/customers.bulk"
        local secs
        if [[ $backend == sqlite ]]; then
            # .import keeps empty cells as '': NULLIF makes them NULL, as outreach writes them.
            local select
            select=$(tr ',' '\n' <<<"$BULK_COLUMNS" | sed 's/.*/NULLIF(&, '"''"')/' | paste -sd, -)
            secs=$(timed sqlite "$target" "PRAGMA journal_mode=WAL" "PRAGMA synchronous=FULL" \
                "CREATE TEMP TABLE bulk_raw ($(sed 's/,/ TEXT,/g; s/$/ TEXT/' <<<"$BULK_COLUMNS"))" \
                ".mode csv" ".import $dir/customers.bulk bulk_raw" \
                "INSERT INTO customers ($BULK_COLUMNS) SELECT $select FROM bulk_raw")
        else
            secs=$(timed postgres "$target" \
                "\\copy customers ($BULK_COLUMNS) FROM '$dir/customers.bulk' WITH (FORMAT csv, NULL '')")
        fi
        record "$backend" "load: bulk loader into customers" "$ROWS" "$secs" ""
        rm -f "$dir/customers.bulk"
    fi
    [[ $(query "$backend" "$target" "SELECT count(*) FROM customers") == "$ROWS" ]] ||
        die "$backend: customers table does not hold $ROWS rows"
    # What autovacuum would have done after a load this size; keeps it out of the timings.
    if [[ $backend == postgres ]]; then sql postgres "$target" "VACUUM ANALYZE"; fi

    # baselines
    log "$backend: baselines"
    record "$backend" "baseline: CREATE TABLE AS SELECT * FROM customers" "$ROWS" \
        "$(timed "$backend" "$target" "CREATE TABLE bench_copy AS SELECT * FROM customers")" ""
    local ts suppressed_reason="no consent"
    if [[ $backend == sqlite ]]; then
        # The messages table's own definition (keys, indexes), renamed; foreign keys on, as outreach has them.
        local ddl
        ddl=$(sqlite3 "$target" "SELECT sql || ';' FROM sqlite_master WHERE tbl_name = 'messages' AND sql IS NOT NULL" |
            sed -e 's/CREATE TABLE "\?messages"\?/CREATE TABLE bench_messages/' \
                -e 's/INDEX messages_\([a-z_]*\) ON messages/INDEX bench_messages_\1 ON bench_messages/')
        sql sqlite "$target" "$ddl"
        ts="strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
        sql sqlite "$target" "INSERT INTO runs (rule_id, rule_kind, occurrence, trigger, state, detail, created_at, updated_at)
            VALUES ('baseline', 'campaign', $ts, 'manual', 'done', '', $ts, $ts)"
        record "$backend" "baseline: INSERT…SELECT outbox rows (the ratio's base)" "$ROWS" "$(timed sqlite "$target" \
            "PRAGMA journal_mode=WAL" "PRAGMA synchronous=FULL" "PRAGMA foreign_keys=ON" \
            "INSERT INTO bench_messages (run_id, customer_id, state, reason, message_id, not_before, created_at, updated_at)
             SELECT (SELECT id FROM runs WHERE rule_id = 'baseline'), id,
                    CASE WHEN consent THEN 'planned' ELSE 'suppressed' END,
                    CASE WHEN consent THEN NULL ELSE '$suppressed_reason' END,
                    '<outreach.0.' || id || '@cafe-bench.example>', $ts, $ts, $ts
             FROM customers")" ""
    else
        # The messages table's own definition (keys, indexes; it has no foreign keys, see migration 0005).
        sql postgres "$target" "CREATE TABLE bench_messages (LIKE messages INCLUDING ALL)" \
            "INSERT INTO runs (rule_id, rule_kind, occurrence, trigger, state, detail, created_at, updated_at)
             VALUES ('baseline', 'campaign', now(), 'manual', 'done', '', now(), now())"
        record "$backend" "baseline: INSERT…SELECT outbox rows (the ratio's base)" "$ROWS" "$(timed postgres "$target" \
            "INSERT INTO bench_messages (run_id, customer_id, state, reason, message_id, not_before, created_at, updated_at)
             SELECT (SELECT id FROM runs WHERE rule_id = 'baseline'), id,
                    CASE WHEN consent THEN 'planned' ELSE 'suppressed' END,
                    CASE WHEN consent THEN NULL ELSE '$suppressed_reason' END,
                    '<outreach.0.' || id || '@cafe-bench.example>', now(), now(), now()
             FROM customers")" ""
    fi
    [[ $(query "$backend" "$target" "SELECT count(*) FROM bench_messages") == "$ROWS" ]] ||
        die "$backend: baseline table does not hold $ROWS rows"
    sql "$backend" "$target" "DROP TABLE bench_copy" "DROP TABLE bench_messages" \
        "DELETE FROM runs WHERE rule_id = 'baseline'"
    if [[ $backend == sqlite ]]; then
        sql sqlite "$target" "PRAGMA wal_checkpoint(TRUNCATE)"
    else
        sql postgres "$target" "VACUUM ANALYZE"
    fi

    # planning
    log "$backend: daemon up, then runs start"
    "$BIN" --config "$dir/outreach.toml" run 2>"$dir/daemon.log" &
    DAEMON_PID=$!
    local up=0
    for _ in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "$backend: daemon exited"; }
        sleep 0.1
    done
    [[ $up == 1 ]] || die "$backend: daemon did not come up"
    sleep 1 # let the first tick pass
    local t0 t1 run state perf_pid=""
    if [[ ${BENCH_PERF:-0} == 1 ]]; then
        perf record -q -F 499 ${BENCH_PERF_OPTS:-} -p "$DAEMON_PID" -o "$WORK/perf-$backend.data" 2>"$dir/perf.log" &
        perf_pid=$!
        sleep 0.5
    fi
    local cpu0 cpu1
    cpu0=$(cpu_ticks "$DAEMON_PID")
    t0=$(now)
    run=$("$BIN" --config "$dir/outreach.toml" runs start bench | awk '{ print $2 }')
    [[ $run =~ ^[0-9]+$ ]] || die "$backend: runs start printed no run id"
    while :; do
        state=$(query "$backend" "$target" "SELECT state FROM runs WHERE id = $run")
        [[ $state == planning ]] || break
        kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$dir/daemon.log" >&2; die "$backend: daemon died while planning"; }
        sleep 0.1
    done
    t1=$(now)
    cpu1=$(cpu_ticks "$DAEMON_PID")
    log "  daemon CPU while planning: $(awk -v a="$cpu0" -v b="$cpu1" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / t }') s (user + system)"
    if [[ -n $perf_pid ]]; then
        perf_stop_report "$perf_pid" "$WORK/perf-$backend.data" "$backend, while planning" 1.5 40
    fi
    local hwm rss
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status")
    [[ $state == awaiting_approval ]] ||
        { tail -20 "$dir/daemon.log" >&2; die "$backend: run ended in $state, not awaiting_approval"; }
    local planned_at
    planned_at=$(python3 - "$dir/daemon.log" <<'EOF'
import datetime as dt, re, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if "run planned" in line:
        stamp = line.split()[0].rstrip("Z")[:26]
        t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
        print(f"{t.timestamp():.6f}")
        break
EOF
)
    [[ -n $planned_at ]] || die "$backend: no \"run planned\" line in the daemon log"
    record "$backend" "planning: runs start → awaiting_approval" "$ROWS" "$(elapsed "$t0" "$t1")" "$hwm"
    record "$backend" "planning: runs start → log \"run planned\"" "$ROWS" "$(elapsed "$t0" "$planned_at")" ""
    log "  daemon VmRSS now $((rss / 1024)) MB"
    grep 'run planned' "$dir/daemon.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
    local rows
    rows=$(query "$backend" "$target" "SELECT count(*) FROM messages WHERE run_id = $run")
    [[ $rows == "$ROWS" ]] || die "$backend: the run has $rows outbox rows, expected $ROWS"
    kill "$DAEMON_PID"
    wait "$DAEMON_PID" || die "$backend: daemon did not stop cleanly"
    DAEMON_PID=""
    if [[ $backend == sqlite ]]; then rm -rf "$dir"; fi
}

if [[ $LOAD == import ]]; then
    CSV="$WORK/customers.csv"
    log "generating $ROWS customers in $CSV"
    gen_customers csv "$CSV"
    log "CSV: $(du -h "$CSV" | cut -f1)"
fi
for backend in "${BACKENDS[@]}"; do
    run_backend "$backend"
done

# --- report ---------------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no -- src migrations Cargo.toml Cargo.lock 2>/dev/null) ]] ||
    commit="$commit+uncommitted changes"
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
pg_version=""
[[ " ${BACKENDS[*]} " != *" postgres "* ]] || pg_version=$(psql "$PG_URL" -qAtc 'SHOW server_version')

echo
echo "outreach at scale: $ROWS customers, $(date -u +%Y-%m-%d), commit $commit, load = $LOAD"
echo "machine: $(nproc) cores ($cpu), $mem RAM; sqlite3 $(sqlite3 --version | cut -d' ' -f1)${pg_version:+, PostgreSQL $pg_version}"
echo "x base = seconds / seconds of the INSERT…SELECT baseline in the same database (lower is better)"
echo "targets: planning at most 1.5 x base, daemon peak RSS under 100 MB"
[[ -z $PG_NOTE ]] || echo "$PG_NOTE"
echo
python3 - "$RESULTS" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
base = {r[0]: float(r[3]) for r in rows if r[1].startswith("baseline: INSERT")}
print(f"| {'backend':<8} | {'step':<54} | {'seconds':>8} | {'rows/s':>9} | {'x base':>7} | {'peak RSS':>8} | target |")
print(f"|{'-'*10}|{'-'*56}|{'-'*10}|{'-'*11}|{'-'*9}|{'-'*10}|--------|")
for backend, step, n, secs, rss in rows:
    s, n = float(secs), int(n)
    ratio = s / base[backend] if base.get(backend) else float("nan")
    mb = f"{int(rss) / 1024:.0f} MB" if rss else ""
    target = ""
    if step.startswith("planning: runs start → awaiting"):
        ok = ratio <= 1.5 and (int(rss) / 1024 < 100)
        target = "met" if ok else "MISSED"
    print(f"| {backend:<8} | {step:<54} | {s:>8.2f} | {n / s if s else 0:>9.0f} | {ratio:>7.1f} | {mb:>8} | {target:<6} |")
EOF
