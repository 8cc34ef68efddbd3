#!/bin/bash
# Inside the booted container (see .ci/lib/nspawn.sh): the installed
# package under systemd. Each check writes "ok …" or "FAIL …" to
# /root/ci/result; a failed check does not stop the others.
set -u
result=/root/ci/result.partial
: >"$result"
ok() { echo "ok   $*" >>"$result"; }
fail() { echo "FAIL $*" >>"$result"; }
unit=outreach.service
data=/var/lib/outreach/data

# Waits up to $1 seconds for the command after it to succeed.
within() {
    local seconds=$1
    shift
    for _ in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

healthz() {
    exec 3<>/dev/tcp/127.0.0.1/8080 || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    timeout 5 cat <&3
    exec 3<&-
}

is_active() { [ "$(systemctl is-active "$unit")" = active ]; }

# `systemctl reload` only sends SIGHUP: wait until the daemon has taken the
# new config (or refused it), as the next check depends on it.
reloads() { journalctl -u "$unit" -o cat | grep -c -e 'configuration reloaded' -e 'reload refused'; }
reloaded_since() { [ "$(reloads)" -gt "$1" ]; }
reload() {
    local before
    before=$(reloads)
    systemctl reload "$unit" || return 1
    within 10 reloaded_since "$before"
}

# 1. Started at boot and active: with Type=notify only after READY=1.
if within 60 is_active && [ "$(systemctl show -P Type "$unit")" = notify ]; then
    ok "active through READY=1 (Type=notify)"
else
    fail "not active: $(systemctl status --no-pager "$unit" 2>&1 | tail -n 15)"
fi

# 2. /healthz.
answer=$(healthz 2>&1)
if grep -q '^HTTP/1.[01] 200' <<<"$answer" && grep -q 'database: reachable' <<<"$answer"; then
    ok "/healthz answers 200"
else
    fail "/healthz: $answer"
fi

# 3. Reload: succeeds, and the daemon says so.
if reload && journalctl -u "$unit" -o cat | grep -q 'configuration reloaded'; then
    ok "systemctl reload"
else
    fail "systemctl reload: $(journalctl -u "$unit" -n 10 --no-pager 2>&1)"
fi

# 4. Files: state folder and data 0700, database and its WAL/SHM 0600, and a
#    mail written to the outbox 0600 (customers imported, a run sent to files).
mkdir -p /etc/outreach/conf.d
printf '[limits]\nquiet_hours = ""\nfrequency_cap = ""\n' >/etc/outreach/conf.d/50-ci.toml
reload
printf 'email,name,consent,points\nanna@example.de,Anna,yes,10\n' >/root/ci/customers.csv
outreach-admin import customers /root/ci/customers.csv >/root/ci/admin.log 2>&1 || fail "outreach-admin import: $(cat /root/ci/admin.log)"
outreach-admin runs start punktestand >>/root/ci/admin.log 2>&1 || fail "outreach-admin runs start: $(cat /root/ci/admin.log)"
mail_written() { ls "$data"/outbox/*.eml; }
within 30 mail_written || fail "no mail in $data/outbox: $(cat /root/ci/admin.log)"
modes=$(stat -c '%a %n' /var/lib/outreach "$data" "$data"/outreach.db "$data"/outreach.db-wal "$data"/outreach.db-shm "$data"/outbox "$data"/outbox/*.eml 2>&1)
if awk '($1 != "700" && $1 != "600") { bad = 1 } END { exit bad }' <<<"$modes" \
    && [ "$(stat -c %a "$data/outreach.db")" = 600 ] && [ "$(stat -c %a "$data")" = 700 ]; then
    ok "files: folders 0700, database, WAL, SHM and mail 0600"
else
    fail "file modes: $modes"
fi
[ "$(stat -c '%a %U:%G' /etc/outreach/outreach.toml)" = "640 root:outreach" ] \
    && ok "config root:outreach 0640" || fail "config: $(stat -c '%a %U:%G' /etc/outreach/outreach.toml)"

# 5. The journal has levels: an error is an error, info is info.
cp /etc/outreach/outreach.toml /root/ci/outreach.toml.good
printf '\n[limits]\nquiet_hourz = ""\n' >>/etc/outreach/outreach.toml
reload
cp /root/ci/outreach.toml.good /etc/outreach/outreach.toml
if journalctl -u "$unit" -p err -o cat | grep -q 'reload refused' \
    && journalctl -u "$unit" -p info -o cat | grep -q 'outreach is running' \
    && ! journalctl -u "$unit" -p warning -o cat | grep -q 'outreach is running'; then
    ok "journal: errors at priority err, the start at info"
else
    fail "journal levels: $(journalctl -u "$unit" -o json --no-pager -n 5 | grep -o '"PRIORITY":"[0-9]"' | tr '\n' ' ')"
fi
reload

# 6. Watchdog: the main loop hangs on a database that another process keeps
#    locked (every pass waits out the busy timeout); systemd kills it after
#    WatchdogSec (shortened here) and starts it again once the lock is gone.
mkdir -p /etc/systemd/system/outreach.service.d
printf '[Service]\nWatchdogSec=8s\n' >/etc/systemd/system/outreach.service.d/ci-watchdog.conf
systemctl daemon-reload
systemctl restart "$unit"
within 30 is_active || fail "not active after the watchdog drop-in"
restarts=$(systemctl show -P NRestarts "$unit")
(echo 'BEGIN IMMEDIATE;'; sleep 45) | sqlite3 "$data/outreach.db" &
lock=$!
watchdog_fired() { journalctl -u "$unit" -o cat | grep -q 'Watchdog timeout'; }
if within 40 watchdog_fired; then
    kill "$lock" 2>/dev/null
    pkill -P "$lock" sleep 2>/dev/null
    wait "$lock" 2>/dev/null
    if within 60 is_active && [ "$(systemctl show -P NRestarts "$unit")" -gt "$restarts" ]; then
        ok "watchdog: a hung main loop was killed and restarted"
    else
        fail "watchdog fired but the service did not come back: $(systemctl status --no-pager "$unit" 2>&1 | tail -n 10)"
    fi
else
    kill "$lock" 2>/dev/null
    fail "no watchdog timeout within 40 s: $(journalctl -u "$unit" -n 10 --no-pager)"
fi
rm /etc/systemd/system/outreach.service.d/ci-watchdog.conf
systemctl daemon-reload
systemctl restart "$unit"

# 7. Upgrade to a newer package: the service is restarted, the data stays.
if apt-get install -y -qq /root/outreach-upgrade.deb >/root/ci/upgrade.log 2>&1 \
    && within 30 is_active \
    && outreach-admin customers show anna@example.de >>/root/ci/upgrade.log 2>&1; then
    ok "upgrade to $(dpkg-query -W -f '${Version}' outreach): restarted, data kept"
else
    fail "upgrade: $(tail -n 20 /root/ci/upgrade.log)"
fi

# 8. Stop, well inside TimeoutStopSec.
start=$(date +%s%N)
systemctl stop "$unit"
took=$((($(date +%s%N) - start) / 1000000))
if [ "$(systemctl is-active "$unit")" = inactive ] && [ "$took" -lt 10000 ] \
    && [ "$(systemctl show -P Result "$unit")" = success ]; then
    ok "systemctl stop in ${took} ms (TimeoutStopSec=$(systemctl show -P TimeoutStopUSec "$unit"))"
else
    fail "stop: $(systemctl is-active "$unit"), ${took} ms, result $(systemctl show -P Result "$unit")"
fi

mv "$result" /root/ci/result
