#!/usr/bin/env bash
# The task page (/t/{token}) in a real browser, the way a staff member meets
# it: a fresh SQLite database and config, one customer with phone consent and
# an owner, the daemon running, a check-in rule started with `outreach runs
# start`, the digest written by `outreach tasks digest`, and the link from that
# email opened in headless Chromium at phone size (390×844) through
# chromedriver's WebDriver API. It takes a screenshot, picks "reached", types a
# note, submits, checks the page says it was saved and that `outreach tasks
# list --json` has the outcome.
#
# Needs: cargo, python3 (standard library only), chromium + chromedriver
# (Debian: apt-get install chromium chromium-driver). Without Chromium it
# prints "skipped: chromium not installed" and exits 0; any failure exits 1.
#
# Screenshots (kept out of git): target/browser/task_page.png (as opened),
# task_page_form.png (filled in, scrolled to the button) and
# task_page_saved.png (after saving); override the folder with SCREENSHOT_DIR.
# KEEP_WORK=1 keeps the temp folder (config, database, outbox, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

chrome=${CHROME:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
driver=${CHROMEDRIVER:-$(command -v chromedriver || true)}
if [ -z "$chrome" ] || [ -z "$driver" ]; then
    echo "skipped: chromium not installed (apt-get install chromium chromium-driver)"
    exit 0
fi

echo "browser: building outreach"
cargo build -q --bin outreach
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/debug/outreach
shots=${SCREENSHOT_DIR:-$target_dir/browser}
mkdir -p "$shots"

work=$(mktemp -d "${TMPDIR:-/tmp}/outreach-browser.XXXXXX")
daemon_pid=""
driver_pid=""
cleanup() {
    local status=$?
    set +e
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    [ -n "$driver_pid" ] && kill -TERM "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null
    if [ "$status" -ne 0 ]; then
        echo "browser: FAILED (exit $status); daemon log:" >&2
        tail -n 40 "$work/daemon.log" >&2 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
        echo "browser: work folder kept: $work" >&2
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

# Modelled on tests/common/mod.rs base_config. Maria works every day, so the
# call is due today whatever day this runs.
cat >"$work/outreach.toml" <<EOF
[business]
name = "Café Test"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Test <hallo@cafe-test.example>"
postal_address = "Teststraße 1, 50667 Köln"
base_url = "http://127.0.0.1:$http_port"

[database]
url = "sqlite://$work/outreach.db"

[mail]
file_dir = "$work/outbox"

[templates]
dir = "$root/templates"

[http]
listen = "127.0.0.1:$http_port"

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-test.example"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[checkin]]
id = "hallo"
audience = "true"
schedule = "0 3 1 1 *"
assign = "owner"
reason = "Lange nichts gehört – einfach nachfragen, wie es geht."
template = "checkin"
outcome_tags = { reached = ["angerufen"] }
EOF

cat >"$work/customers.csv" <<EOF
external_id,name,email,consent,phone,phone_consent,owner
K1,Anna Beispiel,anna@example.de,no,+49 221 123 456,yes,maria
EOF

outreach() { "$bin" --config "$work/outreach.toml" "$@"; }

echo "browser: importing a customer"
outreach import customers "$work/customers.csv"

echo "browser: starting the daemon on 127.0.0.1:$http_port"
env -u RUST_LOG "$bin" --config "$work/outreach.toml" run >"$work/daemon.log" 2>&1 &
daemon_pid=$!
healthy() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$http_port/healthz" 2>/dev/null
}
for _ in $(seq 1 300); do
    healthy && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "browser: the daemon exited" >&2; exit 1; }
    sleep 0.1
done
healthy || { echo "browser: the daemon did not answer /healthz" >&2; exit 1; }

echo "browser: starting the check-in rule"
outreach runs start hallo
tasks_json() { outreach tasks list --json; }
for _ in $(seq 1 300); do
    [ "$(tasks_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 1 ] && break
    sleep 0.1
done

echo "browser: sending the digest"
outreach tasks digest --staff maria

echo "browser: driving Chromium ($("$chrome" --version 2>/dev/null || echo "$chrome"))"
"$driver" --port="$driver_port" >"$work/chromedriver.log" 2>&1 &
driver_pid=$!

python3 - "$work" "$driver_port" "$chrome" "$shots" "$bin" <<'PY'
import base64, email, email.policy, glob, json, os, re, subprocess, sys, time, urllib.error, urllib.request

work, driver_port, chrome, shots, binary = sys.argv[1:6]
config = os.path.join(work, "outreach.toml")
NOTE = "Geht gut, freut sich auf den Sommer"


def fail(message):
    print(f"browser: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def tasks():
    out = subprocess.run([binary, "--config", config, "tasks", "list", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# The task link from the digest: the email parser undoes quoted-printable
# (soft line breaks "=\n", "=3D").
links = []
for path in sorted(glob.glob(os.path.join(work, "outbox", "*.eml")), key=os.path.getmtime):
    with open(path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    if "maria@" not in str(message["To"]):
        continue
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            links += re.findall(r"http://127\.0\.0\.1:\d+/t/[A-Za-z0-9_\-.]+", part.get_content())
if not links:
    fail("no task link in a digest in " + os.path.join(work, "outbox"))
link = links[-1]
print(f"browser: task link {link[:60]}…")

before = tasks()
if len(before) != 1 or before[0]["task"]["state"] != "open":
    fail(f"expected one open task before the browser, got {before}")
task_id = before[0]["task"]["id"]

base = f"http://127.0.0.1:{driver_port}"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response).get("value")
    except urllib.error.HTTPError as e:
        fail(f"WebDriver {method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}")
    except urllib.error.URLError as e:
        fail(f"chromedriver not reachable at {base} (see chromedriver.log): {e.reason}")


for _ in range(100):
    try:
        urllib.request.urlopen(base + "/status", timeout=2)
        break
    except Exception:
        time.sleep(0.1)

profile = os.path.join(work, "chrome-profile")
session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:chromeOptions": {
        "binary": chrome,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=390,844"],
        # A phone: 390×844 CSS pixels at twice the density, touch, mobile UA.
        "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}},
    },
}}})
sid = session["sessionId"]
s = f"/session/{sid}"


def find(css):
    # A W3C element reference: {"element-6066-…": id}.
    return next(iter(call("POST", s + "/element", {"using": "css selector", "value": css}).values()))


def text():
    return call("POST", s + "/execute/sync", {"script": "return document.body.innerText", "args": []})


def screenshot(name):
    path = os.path.join(shots, name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(call("GET", s + "/screenshot")))
    print(f"browser: screenshot {path}")


try:
    call("POST", s + "/url", {"url": link})
    page = text()
    for expected in ["Anruf bei Anna Beispiel", "+49 221 123 456", "Lange nichts gehört",
                     "Wie geht es Ihnen gerade?", "Erreicht", "Speichern"]:
        if expected not in page:
            fail(f"{expected!r} not on the task page:\n{page}")
    tel_link = find('a[href^="tel:"]')
    tel = call("GET", s + f"/element/{tel_link}/attribute/href")
    if tel != "tel:+49221123456":
        fail(f"tel: link is {tel!r}")
    width = call("POST", s + "/execute/sync", {"script":
        "return [window.innerWidth, document.documentElement.scrollWidth]", "args": []})
    if width[0] != 390 or width[1] > width[0]:
        fail(f"not laid out for a 390 px phone (viewport, content width) = {width}")
    screenshot("task_page.png")
    if tasks()[0]["task"]["state"] != "open":
        fail("opening the page changed the task")

    call("POST", s + f"/element/{find('input[name=outcome][value=reached]')}/click", {})
    note = find("textarea[name=note]")
    call("POST", s + f"/element/{note}/click", {})
    call("POST", s + f"/element/{note}/value", {"text": NOTE})
    call("POST", s + "/execute/sync", {"script":
        "document.querySelector('button[type=submit]').scrollIntoView({block: 'end'})", "args": []})
    screenshot("task_page_form.png")
    call("POST", s + f"/element/{find('button[type=submit]')}/click", {})
    deadline = time.time() + 15
    while "gespeichert" not in (page := text()):
        if time.time() > deadline:
            fail(f"the page did not confirm the outcome:\n{page}")
        time.sleep(0.2)
    if "Danke, gespeichert." not in page:
        fail(f"unexpected confirmation:\n{page}")
    screenshot("task_page_saved.png")
finally:
    call("DELETE", s)

after = [t["task"] for t in tasks() if t["task"]["id"] == task_id][0]
got = (after["state"], after["outcome"], after["note"])
if got != ("done", "reached", NOTE):
    fail(f"tasks list --json shows {got}")
print(f"browser: task {task_id} recorded as {after['outcome']!r} with the note")
PY

echo "browser: ok"
