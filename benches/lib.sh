# shellcheck shell=bash
# Helpers shared by the benchmark scripts in this folder. Each script sources
# it before anything else:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# as_root COMMAND…: runs it directly as root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE…: installs Debian packages, refreshing the package
# lists once if the first try fails.
apt_install() {
    log "installing Debian package(s) $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null ||
        { as_root apt-get update >/dev/null &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}

# need_postfix_tools: Postfix's smtp-sink and smtp-source on PATH, installed
# when missing with debconf's "No configuration", so no mail system is set up.
need_postfix_tools() {
    export PATH="$PATH:/usr/sbin:/sbin"
    command -v smtp-sink >/dev/null && command -v smtp-source >/dev/null && return 0
    echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    apt_install postfix
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# pg_url_for DATABASE: the URL of another database on the server of $PG_URL.
pg_url_for() {
    python3 - "$PG_URL" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}

# stop_pid PID SIGNAL SECONDS: sends SIGNAL, waits up to SECONDS, then kills;
# sets STOP_STATUS to the process's exit status.
# shellcheck disable=SC2034 # read by the scripts that source this file
STOP_STATUS=0
stop_pid() {
    local pid=$1 sig=$2 secs=$3 i
    STOP_STATUS=0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "warning: process $pid did not stop on SIG$sig; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # shellcheck disable=SC2034
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

# perf_stop_report PERF_PID DATA WHAT PERCENT LINES: stops a `perf record`
# and prints where the recorded process spent its time (self time, symbols
# above PERCENT %, at most LINES of them).
perf_stop_report() {
    local perf_pid=$1 data=$2 what=$3 percent=$4 lines=$5
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    log "where the daemon's time went ($what; perf, self time)"
    perf report -i "$data" --no-children --sort dso,symbol --percent-limit "$percent" --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -"$lines" >&2
}

# plain_env: the outreach commands run as in the tests: no RUST_LOG, no
# OUTREACH* overrides, plain text logs with time (no journald format).
plain_env() {
    unset RUST_LOG JOURNAL_STREAM
    local var
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^OUTREACH' || true)
}

# build_outreach: the release build of the checkout at $ROOT; sets BIN.
build_outreach() {
    log "building (cargo build --release) in $ROOT"
    (cd "$ROOT" && cargo build --release --bin outreach)
    local target_dir
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    BIN="$target_dir/release/outreach"
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
}

# drop_pg_dbs: drops the databases a script created on $PG_URL's server
# (listed in PG_DBS), for its clean-up.
drop_pg_dbs() {
    local db
    for db in "${PG_DBS[@]}"; do
        psql "$PG_URL" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
            log "warning: could not drop PostgreSQL database $db"
    done
}

# remove_work: removes the script's temp folder $WORK, or with BENCH_KEEP=1
# keeps it and says where.
remove_work() {
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
