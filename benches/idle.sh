#!/usr/bin/env bash
# Idle benchmark: what the daemon costs while nothing is due, with the example
# config (config/outreach.toml: its campaigns, check-in and staff) and
# BENCH_ROWS customers (default 100,000). Run by hand, from any directory:
#
#   benches/idle.sh
#
# Per backend, in one fresh database:
#   baseline  the daemon on the same config with no customers;
#   loaded    the same after `outreach import customers` of BENCH_ROWS
#             realistic customers (benches/customers.py).
# Each is started, left BENCH_WARMUP seconds (default 30) to finish what a
# start does (catch-up, filling today's lists), then measured for
# BENCH_SECONDS (default 300): CPU from /proc/PID/stat (user + system time,
# so it counts only the daemon's own work, however busy the machine), RSS
# (VmRSS) at the end and the peak (VmHWM) since the start. The server's own
# CPU and memory are not included for PostgreSQL.
# Targets: under 1 % of one core and under 20 MB RSS with 100,000 customers.
# The daemon runs on the real clock: if a schedule of the example config
# falls into the window, the script says so (the figures are then not idle).
#
# Environment: BENCH_ROWS, BENCH_SECONDS, BENCH_WARMUP, BENCH_BACKENDS
# ("sqlite postgres"), BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test; `none` skips PostgreSQL).
# Needs cargo, python3, curl, psql for PostgreSQL.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
ROWS=${BENCH_ROWS:-100000}
SECONDS_MEASURED=${BENCH_SECONDS:-300}
WARMUP=${BENCH_WARMUP:-30}
BACKENDS_WANTED=${BENCH_BACKENDS:-sqlite postgres}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/outreach-idle.XXXXXX")
PG_DBS=()
DAEMON_PID=""
cleanup() {
    local status=$?
    set +e
    [[ -z $DAEMON_PID ]] || { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; }
    drop_pg_dbs
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
plain_env

build_outreach

CSV="$WORK/customers.csv"
log "generating $ROWS customers"
python3 "$ROOT/benches/customers.py" "$CSV" "$ROWS"

TICK=$(getconf CLK_TCK)
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# measure BACKEND CASE DIR: starts the daemon on DIR's config and prints one result line.
measure() {
    local backend=$1 case=$2 dir=$3 port lines_before lines_after files_before files_after
    port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$dir/conf.d/90-bench.toml")
    "$BIN" --config "$dir/outreach.toml" run 2>"$dir/daemon-$case.log" &
    DAEMON_PID=$!
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/daemon-$case.log" >&2; die "$backend: the daemon ended"; }
        sleep 0.1
    done
    sleep "$WARMUP"
    lines_before=$(wc -l <"$dir/daemon-$case.log")
    files_before=$(find "$dir/outbox" -type f 2>/dev/null | wc -l)
    local t0 t1
    t0=$(cpu_ticks "$DAEMON_PID")
    sleep "$SECONDS_MEASURED"
    t1=$(cpu_ticks "$DAEMON_PID")
    lines_after=$(wc -l <"$dir/daemon-$case.log")
    files_after=$(find "$dir/outbox" -type f 2>/dev/null | wc -l)
    local rss hwm
    rss=$(status_kb "$DAEMON_PID" VmRSS)
    hwm=$(status_kb "$DAEMON_PID" VmHWM)
    kill "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    local note=""
    [[ $lines_after == "$lines_before" && $files_after == "$files_before" ]] ||
        note="  (not idle: $((lines_after - lines_before)) log lines, $((files_after - files_before)) emails written)"
    awk -v b="$backend" -v c="$case" -v d="$((t1 - t0))" -v hz="$TICK" -v s="$SECONDS_MEASURED" \
        -v r="$rss" -v h="$hwm" -v n="$note" \
        'BEGIN { printf "%-9s %-22s %6.2f %% of a core  %5.1f MB RSS  %5.1f MB peak%s\n", b, c, 100 * d / hz / s, r / 1024, h / 1024, n }'
}

RESULTS=()
for backend in $BACKENDS_WANTED; do
    dir="$WORK/$backend"
    mkdir -p "$dir/conf.d" "$dir/outbox"
    case $backend in
    sqlite) url="sqlite://$dir/outreach.db" ;;
    postgres)
        [[ $PG_URL != none ]] || { log "PostgreSQL skipped (BENCH_POSTGRES_URL=none)"; continue; }
        db="outreach_idle_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
        PG_DBS+=("$db")
        psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
        url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_URL" "$db")
        ;;
    *) die "unknown backend $backend" ;;
    esac
    # The example config as shipped; only where it keeps things changes.
    cp "$ROOT/config/outreach.toml" "$dir/outreach.toml"
    cat >"$dir/conf.d/90-bench.toml" <<EOF
[database]
url = "$url"

[mail]
file_dir = "$dir/outbox"

[http]
listen = "127.0.0.1:$(free_port)"

[templates]
dir = "$ROOT/templates"
EOF
    "$BIN" --config "$dir/outreach.toml" migrate >/dev/null
    log "$backend: no customers"
    RESULTS+=("$(measure "$backend" "no customers" "$dir")")
    log "$backend: importing $ROWS customers"
    "$BIN" --config "$dir/outreach.toml" import customers "$CSV" >"$dir/import.out" 2>&1 ||
        { cat "$dir/import.out" >&2; die "$backend: import failed"; }
    log "$backend: $ROWS customers"
    RESULTS+=("$(measure "$backend" "$ROWS customers" "$dir")")
done

printf '%s\n' "${RESULTS[@]}"
