#!/usr/bin/env bash
# The hosted sign-up form (/s) in a real browser, the way someone meets it
# on their phone: a fresh SQLite database and config with `[signup]` on, the
# daemon running, /s opened in headless Chromium at phone size (390×844)
# through chromedriver's WebDriver API. It checks the page fits the screen
# and its hidden field is out of sight, takes a screenshot, types an address,
# leaves one kind unticked, submits, checks the "look in your inbox" page,
# then opens the link from the confirmation email, presses the button and
# checks with `outreach customers show --json` that the customer now has
# consent by double opt-in (and an objection to the kind left unticked).
#
# Needs: cargo, python3 (standard library only), chromium + chromedriver
# (Debian: apt-get install chromium chromium-driver). Without Chromium it
# prints "skipped: chromium not installed" and exits 0; any failure exits 1.
#
# Screenshots (kept out of git): target/browser/signup_form.png (as opened),
# signup_sent.png (after posting), signup_confirmed.png (after the button);
# override the folder with SCREENSHOT_DIR. KEEP_WORK=1 keeps the temp folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

chrome=${CHROME:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
driver=${CHROMEDRIVER:-$(command -v chromedriver || true)}
if [ -z "$chrome" ] || [ -z "$driver" ]; then
    echo "skipped: chromium not installed (apt-get install chromium chromium-driver)"
    exit 0
fi

label=signup
# shellcheck source=tests/browser/daemon.sh
. tests/browser/daemon.sh
shots=${SCREENSHOT_DIR:-$target_dir/browser}
mkdir -p "$shots"

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

[signup]
enabled = true

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-test.example"

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"

[[campaign]]
id = "punkte"
kind = "loyalty"
schedule = "0 3 1 1 *"
template = "points"
EOF

start_daemon
echo "signup: driving Chromium ($("$chrome" --version 2>/dev/null || echo "$chrome"))"
start_driver

PYTHONPATH="$root/tests/browser" python3 - "$work" "$driver_port" "$chrome" "$shots" "$bin" "$http_port" <<'PY'
import base64, email, email.policy, glob, json, os, re, subprocess, sys, time

from webdriver import Browser, profile

work, driver_port, chrome, shots, binary, http_port = sys.argv[1:7]
config = os.path.join(work, "outreach.toml")
ADDRESS = "nina.neu@example.org"


def fail(message):
    print(f"signup: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def confirmation_link():
    """The /c/ link of the confirmation email, once it is in the outbox."""
    for _ in range(100):
        for path in glob.glob(os.path.join(work, "outbox", "*.eml")):
            with open(path, "rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.default)
            if ADDRESS not in str(message["To"]):
                continue
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    found = re.findall(r"http://127\.0\.0\.1:\d+/c/[A-Za-z0-9_\-.]+", part.get_content())
                    if found:
                        return found[0].rstrip(".")
        time.sleep(0.1)
    fail("no confirmation email in " + os.path.join(work, "outbox"))


def show():
    return subprocess.run([binary, "--config", config, "customers", "show", ADDRESS, "--json"],
                          capture_output=True, text=True)


browser = Browser("signup", driver_port, chrome, profile(work))


def screenshot(name):
    path = os.path.join(shots, name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(browser.call("GET", browser.session + "/screenshot")))
    print(f"signup: screenshot {path}")


def fits():
    width = browser.run("return [window.innerWidth, document.documentElement.scrollWidth]")
    if width[0] != 390 or width[1] > width[0]:
        fail(f"not laid out for a 390 px phone (viewport, content width) = {width}")


try:
    browser.open(f"http://127.0.0.1:{http_port}/s")
    page = browser.text()
    for expected in ["Post von Café Test", "E-Mail-Adresse", "Neuigkeiten von uns", "Treuepunkte und Prämien", "Anmelden"]:
        if expected not in page:
            fail(f"{expected!r} not on the sign-up form:\n{page}")
    hidden = browser.run("""const r = document.querySelector('input[name=website]').closest('.hp')
                                .getBoundingClientRect();
                            return r.right <= 0 || r.bottom <= 0 || r.width <= 1 || r.height <= 1""")
    if not hidden:
        fail("the hidden field is in sight")
    fits()
    screenshot("signup_form.png")

    field = browser.find("input[name=email]")
    browser.call("POST", browser.session + f"/element/{field}/value", {"text": ADDRESS})
    browser.click("input[name=kinds][value=loyalty]")
    browser.run("document.querySelector('button[type=submit]').scrollIntoView({block: 'end'})")
    browser.click("button[type=submit]")
    browser.wait_for_text("Fast geschafft")
    fits()
    screenshot("signup_sent.png")

    link = confirmation_link()
    print(f"signup: confirmation link {link[:60]}…")
    browser.open(link)
    browser.wait_for_text("Ja, Anmeldung bestätigen")
    if show().returncode == 0:
        fail("opening the confirmation link added the customer")
    browser.click("button[type=submit]")
    browser.wait_for_text("Ihre Anmeldung ist bestätigt")
    fits()
    screenshot("signup_confirmed.png")
finally:
    browser.close()

shown = show()
if shown.returncode != 0:
    fail(f"customers show: {shown.stderr}")
text = shown.stdout
data = json.loads(text)
customer = data.get("customer", data)
if customer.get("consent") is not True or customer.get("consent_source") != "double opt-in":
    fail(f"no consent by double opt-in: {text[:800]}")
objections = data.get("objections", [])
if not any(o.get("kind") == "loyalty" and o.get("channel") == "email" for o in objections):
    fail(f"no objection to the loyalty emails left unticked: {text[:800]}")
print("signup: consent recorded by double opt-in, loyalty emails declined")
PY

echo "signup: ok"
