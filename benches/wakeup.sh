#!/usr/bin/env bash
# How soon the first customer email reaches the SMTP server after a person
# lets a run go, on SQLite and on PostgreSQL, against the time the same
# `smtp-sink` takes to receive a message `smtp-source` sends it directly.
# Run by hand (not in CI), from any directory:
#
#   benches/wakeup.sh
#
# Per backend, one daemon (SMTP transport, one connection, one customer)
# and, in the same run, BENCH_ROUNDS times each (in turns, with a random
# pause of 0.5–2.5 s before each, so that they fall anywhere in the daemon's
# 5-second tick and the workers' 2-second idle wait):
#   direct    `smtp-source -m 1` into the sink: the baseline
#   start     `outreach runs start now` (a campaign without approval)
#   approve   `outreach runs approve RUN` of a run waiting for approval
#   page      the approval page's "approve" button (POST /a/TOKEN), with the
#             link from the approval request the sink received
# Each is timed from just before the command to the modification time of
# the sink's dump file of the customer's email (smtp-sink -d). The figures:
# median and maximum per kind, and the medians as a ratio to `direct`.
#
# Environment:
#   BENCH_ROUNDS          measurements per kind and backend (default 10)
#   BENCH_POSTGRES_URL    server to use (default postgres://postgres@127.0.0.1:5432/test);
#                         a database outreach_wakeup_<random> is created there and
#                         dropped again. `none` skips PostgreSQL.
#   BENCH_BACKENDS        which to run (default "sqlite postgres")
#   BENCH_KEEP=1          keep the temp folder (configs, databases, daemon logs, dumps)
#
# Needs cargo, python3, curl, psql (for PostgreSQL); installs the Debian
# package `postfix` (smtp-sink, smtp-source; debconf "No configuration", the
# mail system itself is not started) when missing, as benches/smtp.sh does.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
ROUNDS=${BENCH_ROUNDS:-10}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
WANT_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}

# --- tools --------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
need_postfix_tools

# --- temp folder, processes and clean-up ----------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/outreach-wakeup-bench.XXXXXX")
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

build_outreach

SMTP_PORT=$(free_port)
HTTP_PORT=$(free_port)

BACKENDS=()
[[ " $WANT_BACKENDS " != *" sqlite "* ]] || BACKENDS+=(sqlite)
if [[ " $WANT_BACKENDS " == *" postgres "* && $PG_URL != none ]]; then
    if command -v psql >/dev/null && PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
        BACKENDS+=(postgres)
    else
        log "note: PostgreSQL skipped: $PG_URL is unreachable or psql is missing"
    fi
fi

# --- the sink and its dumps ---------------------------------------------------------

DUMPS=""
start_sink() { # name
    DUMPS="$WORK/dumps-$1"
    mkdir -p "$DUMPS"
    local user=()
    if [[ $(id -u) -eq 0 ]]; then
        # smtp-sink drops to nobody, who must reach the dump folder.
        user=(-u nobody)
        chmod o+x "$WORK"
        chmod 0777 "$DUMPS"
    fi
    # -d: every message to a file of its own; its mtime is when it arrived.
    smtp-sink "${user[@]}" -d "$DUMPS/%H%M%S." "127.0.0.1:$SMTP_PORT" 100 >"$WORK/sink-$1.out" 2>&1 &
    SINK_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    die "smtp-sink did not start on 127.0.0.1:$SMTP_PORT"
}

now() { python3 -c 'import time; print(repr(time.time()))'; }

# Waits (up to 30 s) for a dump file newer than T0 whose envelope names
# RCPT, and prints seconds from T0 to its arrival; with a third argument,
# prints the approval link in it instead.
arrival() { # t0 rcpt [link]
    python3 - "$DUMPS" "$1" "$2" "${3:-}" <<'EOF'
import os, quopri, re, sys, time
folder, t0, rcpt, want_link = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.time() + 30
seen = set()
while time.time() < deadline:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name in seen:
            continue
        st = os.stat(path)
        if st.st_mtime < t0:
            seen.add(name)
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        # smtp-sink writes the envelope first (X-Rcpt-Args: <…>), then the
        # message as it arrives; its last write is at the final ".".
        if "X-Rcpt-Args:" not in text:
            continue
        if f"X-Rcpt-Args: <{rcpt}>" not in text:
            seen.add(name)
            continue
        time.sleep(0.02)
        st = os.stat(path)
        seen.add(name)
        if want_link:
            # The text part is quoted-printable: soft line breaks split the link.
            body = quopri.decodestring(open(path, "rb").read()).decode("utf-8", "replace")
            m = re.search(r"/a/([A-Za-z0-9_.\-]+)", body)
            if m:
                print(m.group(1))
                sys.exit(0)
            continue
        print(f"{st.st_mtime - t0:.3f}")
        sys.exit(0)
    time.sleep(0.002)
sys.exit(f"nothing for {rcpt} arrived within 30 s")
EOF
}

pause() { python3 -c 'import random, time; time.sleep(random.uniform(0.5, 2.5))'; }

write_config() { # file db_url
    cat >"$1" <<EOF
[business]
name = "Café Wakeup"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Wakeup <hallo@cafe-wakeup.example>"
postal_address = "Weckstraße 1, 50667 Köln"
base_url = "http://127.0.0.1:$HTTP_PORT"

[database]
url = "$2"

[mail]
transport = "smtp"
file_dir = "$WORK/outbox"
rate_per_minute = 0

[mail.smtp]
host = "127.0.0.1"
port = $SMTP_PORT
tls = "none"
connections = 1

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
email = "maria@cafe-wakeup.example"

[[campaign]]
id = "now"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"

[[campaign]]
id = "approved"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"
approval = "required"
approvers = ["maria"]
EOF
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

run_id() { # output of `runs start`
    [[ $1 =~ run\ ([0-9]+) ]] || die "no run id in: $1"
    echo "${BASH_REMATCH[1]}"
}

bench_backend() { # backend db_url
    local backend=$1 url=$2 dir="$WORK/$1"
    mkdir -p "$dir"
    local config="$dir/outreach.toml"
    write_config "$config" "$url"
    printf 'email,consent\nkunde@wakeup.example,yes\n' >"$dir/customers.csv"
    "$BIN" --config "$config" import customers "$dir/customers.csv" >"$dir/import.out" 2>&1 ||
        { cat "$dir/import.out" >&2; die "import failed"; }
    start_sink "$backend"
    (cd "$dir" && exec "$BIN" --config "$config" run) >"$dir/daemon.log" 2>&1 &
    DAEMON_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "the daemon exited"; }
        sleep 0.1
    done
    sleep 2
    local round t0 out run link secs
    for ((round = 1; round <= ROUNDS; round++)); do
        pause
        t0=$(now)
        smtp-source -m 1 -s 1 -t direct@wakeup.example "127.0.0.1:$SMTP_PORT" || die "smtp-source failed"
        secs=$(arrival "$t0" direct@wakeup.example)
        printf '%s\tdirect\t%s\n' "$backend" "$secs" >>"$RESULTS"

        pause
        t0=$(now)
        "$BIN" --config "$config" runs start now >/dev/null 2>>"$dir/cli.err" || die "runs start failed"
        secs=$(arrival "$t0" kunde@wakeup.example)
        printf '%s\tstart\t%s\n' "$backend" "$secs" >>"$RESULTS"

        # A run waiting for approval: its request to maria arrives first.
        t0=$(now)
        out=$("$BIN" --config "$config" runs start approved 2>>"$dir/cli.err") || die "runs start failed"
        run=$(run_id "$out")
        arrival "$t0" maria@cafe-wakeup.example link >/dev/null
        pause
        t0=$(now)
        "$BIN" --config "$config" runs approve "$run" >/dev/null 2>>"$dir/cli.err" || die "runs approve failed"
        secs=$(arrival "$t0" kunde@wakeup.example)
        printf '%s\tapprove\t%s\n' "$backend" "$secs" >>"$RESULTS"

        t0=$(now)
        "$BIN" --config "$config" runs start approved >/dev/null 2>>"$dir/cli.err" || die "runs start failed"
        link=$(arrival "$t0" maria@cafe-wakeup.example link)
        pause
        t0=$(now)
        curl -fsS -o /dev/null -d action=approve "http://127.0.0.1:$HTTP_PORT/a/$link" || die "approving on the page failed"
        secs=$(arrival "$t0" kunde@wakeup.example)
        printf '%s\tpage\t%s\n' "$backend" "$secs" >>"$RESULTS"
        log "  $backend round $round: $(tail -n 4 "$RESULTS" | cut -f2,3 | tr '\t\n' '= ')"
    done
    stop_pid "$DAEMON_PID" TERM 30
    DAEMON_PID=""
    stop_pid "$SINK_PID" TERM 5
    SINK_PID=""
}

for backend in "${BACKENDS[@]}"; do
    if [[ $backend == sqlite ]]; then
        bench_backend sqlite "sqlite://$WORK/sqlite/outreach.db"
    else
        db="outreach_wakeup_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
        psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
        PG_DBS+=("$db")
        bench_backend postgres "$(python3 - "$PG_URL" "$db" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
)"
    fi
done

python3 - "$RESULTS" "$ROUNDS" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print(f"first customer email at the SMTP server, seconds ({sys.argv[2]} rounds each)")
print(f"{'backend':<10}{'kind':<9}{'median':>8}{'max':>8}{'median/direct':>15}")
for backend in dict.fromkeys(r[0] for r in rows):
    by = {}
    for b, kind, secs in rows:
        if b == backend:
            by.setdefault(kind, []).append(float(secs))
    base = statistics.median(by["direct"])
    for kind in ("direct", "start", "approve", "page"):
        v = by.get(kind, [])
        if v:
            med = statistics.median(v)
            print(f"{backend:<10}{kind:<9}{med:>8.3f}{max(v):>8.3f}{med / base:>15.1f}")
EOF
