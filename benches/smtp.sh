#!/usr/bin/env bash
# Benchmark of sending one campaign run over SMTP, on SQLite and on
# PostgreSQL, against Postfix's `smtp-source` into the same `smtp-sink` as
# the ceiling. Run by hand (not in CI), from any directory:
#
#   benches/smtp.sh
#
# Per backend, in the same run:
#   baseline   `smtp-source -d -s CONNECTIONS -m MESSAGES -l SIZE` into a fresh
#              `smtp-sink` on loopback (median of BENCH_BASELINE_RUNS runs);
#   outreach   MESSAGES distinct customers imported into a fresh database, the
#              daemon (`outreach run`, SMTP transport, CONNECTIONS connections,
#              no rate limit unless BENCH_RATE, no frequency cap, no quiet hours) started, then
#              `outreach runs start bench`; the clock runs from that command
#              until `outreach status --json` (polled every 0.1 s once the sink
#              has received MESSAGES, every 2 s before) shows all
#              MESSAGES messages in the outbox and none `planned` or `sending`.
#              Then every message must be `sent` and the sink must have
#              received MESSAGES messages.
#
# Phases of the outreach run, from the daemon's log and the outbox:
#   pickup     `runs start` → the tick that plans it (messages.created_at is
#              that tick's start; the daemon ticks every 5 s, so 0–5 s)
#   plan       that tick → the log line "run planned"
#   send       "run planned" → the last commit of a send result (max sent_at)
#   send msg/s first → last send: messages committed after the first batch
#              commit / (last commit − first commit); sent_at is stamped per
#              batch commit, so this is the steady-state send rate
#   e2e msg/s  MESSAGES / (`runs start` → status shows nothing left)
# Peak RSS is the daemon's VmHWM (read before SIGTERM); for PostgreSQL the
# server's memory is not included. `cpu` is the daemon's user+system CPU time
# over the measured window as a share of one core.
#
# Environment:
#   BENCH_MESSAGES        customers / messages (default 20000)
#   BENCH_CONNECTIONS     SMTP connections of both outreach and smtp-source (default 8)
#   BENCH_SIZE            smtp-source payload bytes (default 3000, about an outreach message)
#   BENCH_BASELINE_RUNS   smtp-source runs per backend, median taken (default 3)
#   BENCH_SMTP_PORT       port of smtp-sink (default 2525; a free one if taken)
#   BENCH_TIMEOUT         seconds to wait for a run to drain (default 900)
#   BENCH_POSTGRES_URL    server to use (default postgres://postgres@127.0.0.1:5432/test);
#                         a database outreach_bench_<random> is created there and
#                         dropped again. `none` skips PostgreSQL.
#   BENCH_BACKENDS        which to run (default "sqlite postgres")
#   BENCH_RATE            mail.rate_per_minute of outreach (default 0: no limit); with
#                         a limit the send phase shows what the limiter lets through
#   BENCH_DB_CONNECTIONS  database.max_connections of outreach (default: unset, the
#                         backend's default)
#   BENCH_KEEP=1          keep the temp folder (CSV, configs, databases, daemon logs)
#   BENCH_PERF=1          record the daemon with `perf record` (BENCH_PERF_OPTS
#                         added, e.g. `-g`) from `runs start` until the run is
#                         sent, and print where its time went; such a run's
#                         timings are not the figures to quote
#
# Needs cargo, python3, curl, psql (for PostgreSQL); installs the Debian
# packages `postfix` (smtp-sink, smtp-source; debconf "No configuration", the
# mail system itself is not started), `sqlite3` and `jq` when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
MESSAGES=${BENCH_MESSAGES:-20000}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
SIZE=${BENCH_SIZE:-3000}
BASELINE_RUNS=${BENCH_BASELINE_RUNS:-3}
SMTP_PORT=${BENCH_SMTP_PORT:-2525}
TIMEOUT=${BENCH_TIMEOUT:-900}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
WANT_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
RATE=${BENCH_RATE:-0}
DB_CONNECTIONS=${BENCH_DB_CONNECTIONS:-}
CAMPAIGN=bench

# --- tools --------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is needed to generate the CSV"
command -v curl >/dev/null || die "curl is needed to wait for the daemon"
need_postfix_tools
command -v sqlite3 >/dev/null || apt_install sqlite3
command -v jq >/dev/null || apt_install jq
CLK_TCK=$(getconf CLK_TCK)

# --- temp folder, processes and clean-up ----------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/outreach-smtp-bench.XXXXXX")
PG_DBS=()
SINK_PID=""
DAEMON_PID=""
cleanup() {
    local status=$?
    set +e
    [[ -z $DAEMON_PID ]] || stop_pid "$DAEMON_PID" TERM 30
    [[ -z $SINK_PID ]] || stop_pid "$SINK_PID" TERM 5
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

# --- ports ---------------------------------------------------------------------

port_free() { # port
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
if ! port_free "$SMTP_PORT"; then
    log "note: port $SMTP_PORT is taken; using another"
    SMTP_PORT=$(free_port)
fi
HTTP_PORT=$(free_port)

# --- PostgreSQL available? -----------------------------------------------------

BACKENDS=()
[[ " $WANT_BACKENDS " != *" sqlite "* ]] || BACKENDS+=(sqlite)
PG_NOTE=""
if [[ " $WANT_BACKENDS " != *" postgres "* ]]; then
    PG_NOTE="PostgreSQL skipped (BENCH_BACKENDS=$WANT_BACKENDS)"
elif [[ $PG_URL == none ]]; then
    PG_NOTE="PostgreSQL skipped (BENCH_POSTGRES_URL=none)"
elif ! command -v psql >/dev/null; then
    PG_NOTE="PostgreSQL skipped: psql is not installed"
elif ! PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    PG_NOTE="PostgreSQL skipped: $PG_URL is unreachable"
else
    BACKENDS+=(postgres)
fi
[[ -z $PG_NOTE ]] || log "note: $PG_NOTE"

# --- smtp-sink -----------------------------------------------------------------

SINK_OUT=""
start_sink() { # name
    SINK_OUT="$WORK/sink-$1.out"
    local user=()
    [[ $(id -u) -ne 0 ]] || user=(-u nobody)
    # -c: running counters (sess=… quit=… mesg=…) on stdout, to check what arrived.
    smtp-sink "${user[@]}" -c "127.0.0.1:$SMTP_PORT" 1000 >"$SINK_OUT" 2>&1 &
    SINK_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && return 0
        kill -0 "$SINK_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$SINK_OUT" >&2
    die "smtp-sink did not start on 127.0.0.1:$SMTP_PORT"
}
# Messages the running sink has received so far: its last counter line
# (one process, so that polling it costs the measured run next to nothing).
sink_count() {
    local tail_
    tail_=$(tail -c 200 "$SINK_OUT")
    if [[ $tail_ =~ .*mesg=([0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo 0
    fi
}
# Stops the sink; SINK_GOT = how many messages it received.
SINK_GOT=0
stop_sink() {
    stop_pid "$SINK_PID" TERM 5
    SINK_PID=""
    SINK_GOT=$(sink_count)
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
result() { # backend key value
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
}

baseline() { # backend
    local backend=$1 run t0 t1 secs
    start_sink "$backend-baseline"
    for ((run = 1; run <= BASELINE_RUNS; run++)); do
        t0=$(now)
        smtp-source -d -s "$CONNECTIONS" -m "$MESSAGES" -l "$SIZE" "127.0.0.1:$SMTP_PORT" ||
            die "smtp-source failed"
        t1=$(now)
        secs=$(elapsed "$t0" "$t1")
        result "$backend" baseline_secs "$secs"
        log "  $backend smtp-source run $run: $secs s"
    done
    stop_sink
    [[ $SINK_GOT == $((MESSAGES * BASELINE_RUNS)) ]] ||
        die "smtp-sink received $SINK_GOT messages from smtp-source, expected $((MESSAGES * BASELINE_RUNS))"
}

# --- customers and config --------------------------------------------------------

CSV="$WORK/customers.csv"
log "generating $MESSAGES customers in $CSV"
python3 - "$CSV" "$MESSAGES" <<'EOF'
import sys
path, rows = sys.argv[1], int(sys.argv[2])
first = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Jürgen", "Zoë"]
last = ["Müller", "Schmidt", "Weber", "Meyer", "Wagner", "Becker", "Yılmaz", "Öztürk", "Groß"]
with open(path, "w", encoding="utf-8") as f:
    f.write("email;name;consent;tags;locale\n")
    for i in range(rows):
        f.write(f"kunde.{i}@bench.example;{first[i % len(first)]} {last[i % len(last)]};ja;newsletter;de\n")
EOF

write_config() { # file db_url
    cat >"$1" <<EOF
[business]
name = "Café Bench"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Bench <hallo@cafe-bench.example>"
postal_address = "Benchstraße 1, 50667 Köln"
base_url = "http://127.0.0.1:$HTTP_PORT"

[database]
url = "$2"
${DB_CONNECTIONS:+max_connections = $DB_CONNECTIONS}

[mail]
transport = "smtp"
file_dir = "$WORK/outbox"
rate_per_minute = $RATE

[mail.smtp]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "none"
connections = $CONNECTIONS

[http]
listen = "127.0.0.1:$HTTP_PORT"

[limits]
frequency_cap = ""
quiet_hours = ""

[templates]
dir = "$ROOT/templates"

[log]
format = "text"
level = "info"

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-bench.example"

[[staff]]
id = "jonas"
name = "Jonas"
email = "jonas@cafe-bench.example"
manager = "maria"

[[campaign]]
id = "$CAMPAIGN"
kind = "status_update"
schedule = "0 0 1 1 *"
audience = '"newsletter" in tags'
template = "status_update"
EOF
}

# --- one outreach run ------------------------------------------------------------

# Prints the queue (state=count …) of `outreach status --json`, one line.
# (stderr: PostgreSQL prints a migration notice on every start)
queue_of() { # config
    "$BIN" --config "$1" status --json 2>>"$WORK/status.err" | jq -r '.queue | to_entries | map("\(.key)=\(.value)") | join(" ")'
}

# Timestamp (epoch seconds) of the first daemon log line containing $2.
log_time() { # logfile text
    python3 - "$1" "$2" <<'EOF'
import datetime as dt, re, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if sys.argv[2] in line:
        m = re.match(r"\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", line)
        if m:
            frac = (m.group(2) or ".0")[:7]
            print(dt.datetime.fromisoformat(m.group(1) + frac + "+00:00").timestamp())
            sys.exit(0)
sys.exit(1)
EOF
}

# Epoch seconds of SQLite/chrono text timestamps, one per line on stdin.
to_epoch() {
    python3 -c '
import datetime as dt, re, sys
for s in sys.stdin.read().split():
    m = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", s)
    frac = (m.group(3) or ".0")[:7]
    tz = m.group(4) or "+00:00"
    tz = "+00:00" if tz == "Z" else tz
    print(dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}").timestamp())
'
}

# Prints: planning_start first_sent last_sent sent_in_first_commit commits
outbox_times() { # backend db_url
    if [[ $1 == sqlite ]]; then
        local db=${2#sqlite://} row
        row=$(sqlite3 -separator ' ' "$db" "SELECT
            (SELECT min(created_at) FROM messages),
            (SELECT min(sent_at) FROM messages WHERE state = 'sent'),
            (SELECT max(sent_at) FROM messages WHERE state = 'sent')")
        read -r a b c <<<"$row"
        printf '%s %s\n' "$(printf '%s\n%s\n%s\n' "$a" "$b" "$c" | to_epoch | tr '\n' ' ')" \
            "$(sqlite3 -separator ' ' "$db" "SELECT
                (SELECT count(*) FROM messages WHERE sent_at = (SELECT min(sent_at) FROM messages WHERE state = 'sent')),
                (SELECT count(DISTINCT sent_at) FROM messages WHERE state = 'sent')")"
    else
        psql "$2" -qAt -F ' ' -v ON_ERROR_STOP=1 -c "SELECT
            extract(epoch FROM (SELECT min(created_at) FROM messages)),
            extract(epoch FROM (SELECT min(sent_at) FROM messages WHERE state = 'sent')),
            extract(epoch FROM (SELECT max(sent_at) FROM messages WHERE state = 'sent')),
            (SELECT count(*) FROM messages WHERE sent_at = (SELECT min(sent_at) FROM messages WHERE state = 'sent')),
            (SELECT count(DISTINCT sent_at) FROM messages WHERE state = 'sent')"
    fi
}

run_outreach() { # backend db_url
    local backend=$1 url=$2 dir="$WORK/$1"
    mkdir -p "$dir"
    local config="$dir/outreach.toml" daemon_log="$dir/daemon.log"
    write_config "$config" "$url"
    "$BIN" --config "$config" check >"$dir/check.out" 2>&1 || {
        cat "$dir/check.out" >&2
        die "outreach check failed"
    }
    local t0 t1 imp
    t0=$(now)
    imp=$("$BIN" --config "$config" import customers "$CSV" 2>&1) || {
        printf '%s\n' "$imp" >&2
        die "import failed"
    }
    t1=$(now)
    [[ $imp == *"imported $MESSAGES,"* ]] || {
        printf '%s\n' "$imp" >&2
        die "import did not import $MESSAGES customers"
    }
    log "  $backend import: $(elapsed "$t0" "$t1") s"
    # Size of one message as composed (headers + text part + HTML part, before MIME encoding).
    local size
    size=$(($("$BIN" --config "$config" preview "$CAMPAIGN" --customer kunde.0@bench.example 2>/dev/null | wc -c) +
        $("$BIN" --config "$config" preview "$CAMPAIGN" --customer kunde.0@bench.example --html 2>/dev/null | wc -c)))
    result "$backend" message_bytes "$size"

    start_sink "$backend-outreach"
    "$BIN" --config "$config" run >"$daemon_log" 2>&1 &
    DAEMON_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$daemon_log" >&2; die "the daemon exited"; }
        sleep 0.1
    done
    ((i < 300)) || { cat "$daemon_log" >&2; die "the daemon did not answer /healthz"; }

    local ticks0 start_out q="" end deadline total perf_pid=""
    if [[ ${BENCH_PERF:-0} == 1 ]]; then
        perf record -q -F 499 ${BENCH_PERF_OPTS:-} -p "$DAEMON_PID" -o "$WORK/perf-$backend.data" 2>"$dir/perf.log" &
        perf_pid=$!
        sleep 0.5
    fi
    ticks0=$(cpu_ticks "$DAEMON_PID")
    t0=$(now)
    start_out=$("$BIN" --config "$config" runs start "$CAMPAIGN" 2>&1) || {
        printf '%s\n' "$start_out" >&2
        die "runs start failed"
    }
    deadline=$((SECONDS + TIMEOUT))
    # `outreach status` costs a process, a database connection and a count
    # over the outbox: it runs every 2 s while the sink has not received
    # everything (in case some messages never reach it), then every 0.1 s.
    local next_status=0
    while :; do
        if (($(sink_count) >= MESSAGES || SECONDS >= next_status)); then
            next_status=$((SECONDS + 2))
            q=$(queue_of "$config") || q="status-failed"
            total=0
            for kv in $q; do [[ $kv == *=* ]] && total=$((total + ${kv#*=})); done
            if ((total >= MESSAGES)) && [[ " $q" != *" planned="* && " $q" != *" sending="* ]]; then
                end=$(now)
                break
            fi
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || { tail -n 30 "$daemon_log" >&2; die "the daemon died; queue: $q"; }
        ((SECONDS < deadline)) || { tail -n 30 "$daemon_log" >&2; die "not drained after ${TIMEOUT}s; queue: $q"; }
        sleep 0.1
    done
    local ticks1 hwm_kb
    ticks1=$(cpu_ticks "$DAEMON_PID")
    hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DAEMON_PID/status")
    if [[ -n $perf_pid ]]; then
        perf_stop_report "$perf_pid" "$WORK/perf-$backend.data" "$backend, while sending" 1 50
    fi
    stop_pid "$DAEMON_PID" TERM 30
    local daemon_status=$STOP_STATUS
    DAEMON_PID=""
    stop_sink
    log "  $backend outreach: $(elapsed "$t0" "$end") s; queue: $q; sink received $SINK_GOT"
    [[ " $q " == *" sent=$MESSAGES "* && $(wc -w <<<"$q") -eq 1 ]] ||
        die "expected all $MESSAGES messages sent, queue: $q"
    [[ $SINK_GOT == "$MESSAGES" ]] || die "smtp-sink received $SINK_GOT messages, expected $MESSAGES"
    [[ $daemon_status == 0 ]] || {
        tail -n 30 "$daemon_log" >&2
        die "the daemon exited with status $daemon_status on SIGTERM"
    }

    local planned_at
    planned_at=$(log_time "$daemon_log" "run planned") || die "no 'run planned' line in $daemon_log"
    local plan_start first_sent last_sent first_n commits
    read -r plan_start first_sent last_sent first_n commits < <(outbox_times "$backend" "$url")
    result "$backend" start "$t0"
    result "$backend" end "$end"
    result "$backend" plan_start "$plan_start"
    result "$backend" planned "$planned_at"
    result "$backend" first_sent "$first_sent"
    result "$backend" last_sent "$last_sent"
    result "$backend" first_n "$first_n"
    result "$backend" commits "$commits"
    result "$backend" rss_kb "$hwm_kb"
    result "$backend" cpu_secs "$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    [[ ${BENCH_KEEP:-0} == 1 ]] || rm -f "$dir"/*.db "$dir"/*.db-*
}

run_sqlite() {
    baseline sqlite
    run_outreach sqlite "sqlite://$WORK/sqlite/outreach.db"
}

run_postgres() {
    baseline postgres
    local db
    db="outreach_bench_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
    PG_DBS+=("$db")
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
    run_outreach postgres "$(pg_url_for "$db")"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}

for backend in "${BACKENDS[@]}"; do
    log "$backend"
    "run_$backend"
done

# --- report --------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no -- src migrations templates Cargo.toml Cargo.lock 2>/dev/null) ]] ||
    commit="$commit+uncommitted changes"
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
pg_version=""
[[ " ${BACKENDS[*]} " != *" postgres "* ]] || pg_version=$(psql "$PG_URL" -qAtc 'SHOW server_version')

echo
echo "outreach over SMTP: $MESSAGES messages, $CONNECTIONS connections, $(date -u +%Y-%m-%d), commit $commit"
echo "machine: $(nproc) cores ($cpu), $mem RAM; sqlite3 $(sqlite3 --version | cut -d' ' -f1)${pg_version:+, PostgreSQL $pg_version}"
echo "baseline: smtp-source -d -s $CONNECTIONS -m $MESSAGES -l $SIZE into smtp-sink, median of $BASELINE_RUNS"
[[ -z $PG_NOTE ]] || echo "$PG_NOTE"
echo
python3 - "$RESULTS" "$MESSAGES" <<'EOF'
import statistics, sys
from collections import defaultdict

path, n = sys.argv[1], int(sys.argv[2])
r = defaultdict(lambda: defaultdict(list))
for line in open(path):
    backend, key, value = line.rstrip("\n").split("\t")
    r[backend][key].append(float(value))

def one(b, k):
    return r[b][k][0]

rows = []
for b in ("sqlite", "postgres"):
    if b not in r:
        continue
    base = n / statistics.median(r[b]["baseline_secs"])
    e2e_secs = one(b, "end") - one(b, "start")
    steady_secs = one(b, "last_sent") - one(b, "first_sent")
    steady = (n - one(b, "first_n")) / steady_secs if steady_secs > 0 else float("nan")
    e2e = n / e2e_secs
    rows.append((b, base, steady, e2e, e2e_secs, one(b, "rss_kb") / 1024, one(b, "cpu_secs")))
    r[b]["_phases"] = [
        one(b, "plan_start") - one(b, "start"),
        one(b, "planned") - one(b, "plan_start"),
        one(b, "last_sent") - one(b, "planned"),
        one(b, "end") - one(b, "last_sent"),
        e2e_secs,
        one(b, "commits"),
        one(b, "message_bytes"),
    ]

print(f"{'backend':<9} {'outreach msg/s':>14} {'outreach msg/s':>14} {'smtp-source':>11} {'ratio':>6} {'ratio':>6} {'peak RSS':>8}")
print(f"{'':<9} {'send phase':>14} {'end-to-end':>14} {'msg/s':>11} {'send':>6} {'e2e':>6} {'MB':>8}")
for b, base, steady, e2e, _, rss, _ in rows:
    print(f"{b:<9} {steady:>14.0f} {e2e:>14.0f} {base:>11.0f} {steady / base:>6.3f} {e2e / base:>6.3f} {rss:>8.1f}")
print()
print("targets: send ratio >= 0.9 and end to end >= 0.75 (40,000 messages) of smtp-source while recording every send durably; peak RSS < 64 MB")
print()
print(f"{'backend':<9} {'pickup s':>8} {'plan s':>7} {'send s':>7} {'drain s':>7} {'total s':>7} {'commits':>7} {'msg/commit':>10} {'daemon cpu':>10} {'msg bytes':>9}")
for b, _, _, _, e2e_secs, _, cpu in rows:
    pickup, plan, send, drain, total, commits, size = r[b]["_phases"]
    print(f"{b:<9} {pickup:>8.2f} {plan:>7.2f} {send:>7.2f} {drain:>7.2f} {total:>7.2f} {commits:>7.0f} {n / commits:>10.1f} {cpu / total:>9.0%} {size:>9.0f}")
print()
print("pickup: `runs start` -> the daemon's tick that plans it (ticks every 5 s); plan: -> 'run planned';")
print("send: -> last send recorded; drain: -> status poll saw it; send msg/s: first -> last recorded send;")
print("daemon cpu: user+system CPU time of the daemon over the total, in share of one core;")
print("msg bytes: `outreach preview` headers + text + HTML (before MIME encoding).")
EOF
