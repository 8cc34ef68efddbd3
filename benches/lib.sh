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

# apt_install PACKAGE…: installs Debian packages (through sudo unless root),
# refreshing the package lists once if the first try fails.
apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing Debian package(s) $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null ||
        { "${sudo[@]}" apt-get update >/dev/null &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}

# need_postfix_tools: Postfix's smtp-sink and smtp-source on PATH, installed
# when missing with debconf's "No configuration", so no mail system is set up.
need_postfix_tools() {
    export PATH="$PATH:/usr/sbin:/sbin"
    command -v smtp-sink >/dev/null && command -v smtp-source >/dev/null && return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
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
