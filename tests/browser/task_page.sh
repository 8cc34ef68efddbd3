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

label=browser
# shellcheck source=tests/browser/daemon.sh
. tests/browser/daemon.sh
shots=${SCREENSHOT_DIR:-$target_dir/browser}
mkdir -p "$shots"

# Modelled on tests/it/common/mod.rs base_config. Maria works every day, so the
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

echo "browser: importing a customer"
outreach import customers "$work/customers.csv"
start_daemon

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
start_driver

PYTHONPATH="$root/tests/browser" python3 - "$work" "$driver_port" "$chrome" "$shots" "$bin" <<'PY'
import base64, email, email.policy, glob, json, os, re, subprocess, sys

from webdriver import Browser, profile

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

browser = Browser("browser", driver_port, chrome, profile(work))


def screenshot(name):
    path = os.path.join(shots, name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(browser.call("GET", browser.session + "/screenshot")))
    print(f"browser: screenshot {path}")


try:
    browser.open(link)
    page = browser.text()
    for expected in ["Anruf bei Anna Beispiel", "+49 221 123 456", "Lange nichts gehört",
                     "Wie geht es Ihnen gerade?", "Erreicht", "Speichern"]:
        if expected not in page:
            fail(f"{expected!r} not on the task page:\n{page}")
    tel_link = browser.find('a[href^="tel:"]')
    tel = browser.call("GET", browser.session + f"/element/{tel_link}/attribute/href")
    if tel != "tel:+49221123456":
        fail(f"tel: link is {tel!r}")
    width = browser.run("return [window.innerWidth, document.documentElement.scrollWidth]")
    if width[0] != 390 or width[1] > width[0]:
        fail(f"not laid out for a 390 px phone (viewport, content width) = {width}")
    screenshot("task_page.png")
    if tasks()[0]["task"]["state"] != "open":
        fail("opening the page changed the task")

    browser.click("input[name=outcome][value=reached]")
    browser.click("textarea[name=note]")
    browser.call("POST", browser.session + f"/element/{browser.find('textarea[name=note]')}/value", {"text": NOTE})
    browser.run("document.querySelector('button[type=submit]').scrollIntoView({block: 'end'})")
    screenshot("task_page_form.png")
    browser.click("button[type=submit]")
    page = browser.wait_for_text("gespeichert")
    if "Danke, gespeichert." not in page:
        fail(f"unexpected confirmation:\n{page}")
    screenshot("task_page_saved.png")
finally:
    browser.close()

after = [t["task"] for t in tasks() if t["task"]["id"] == task_id][0]
got = (after["state"], after["outcome"], after["note"])
if got != ("done", "reached", NOTE):
    fail(f"tasks list --json shows {got}")
print(f"browser: task {task_id} recorded as {after['outcome']!r} with the note")
PY

echo "browser: ok"
