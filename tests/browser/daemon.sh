# Shared by the browser scripts (sourced, not run): builds outreach, makes a
# work folder that is removed on success (kept on failure or with
# KEEP_WORK=1), and starts the daemon and chromedriver, stopping both on
# exit. Set `label` (the prefix of messages) before sourcing; `root` is the
# repository.

echo "$label: building outreach"
cargo build -q --bin outreach
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/debug/outreach

work=$(mktemp -d "${TMPDIR:-/tmp}/outreach-$label.XXXXXX")
daemon_pid=""
driver_pid=""
cleanup() {
    local status=$?
    set +e
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    [ -n "$driver_pid" ] && kill -TERM "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null
    if [ "$status" -ne 0 ]; then
        echo "$label: FAILED (exit $status); daemon log:" >&2
        tail -n 40 "$work/daemon.log" >&2 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
        echo "$label: work folder kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
driver_port=$(free_port)

outreach() { "$bin" --config "$work/outreach.toml" "$@"; }

# The daemon on $work/outreach.toml, answering /healthz on $http_port.
start_daemon() {
    echo "$label: starting the daemon on 127.0.0.1:$http_port"
    env -u RUST_LOG "$bin" --config "$work/outreach.toml" run >"$work/daemon.log" 2>&1 &
    daemon_pid=$!
    local healthy="python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' http://127.0.0.1:$http_port/healthz"
    for _ in $(seq 1 300); do
        eval "$healthy" 2>/dev/null && return 0
        kill -0 "$daemon_pid" 2>/dev/null || { echo "$label: the daemon exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "$label: the daemon did not answer /healthz" >&2
    exit 1
}

start_driver() {
    "$driver" --port="$driver_port" >"$work/chromedriver.log" 2>&1 &
    driver_pid=$!
}
