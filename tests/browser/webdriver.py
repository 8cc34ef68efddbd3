"""Headless Chromium at phone size (390×844 CSS pixels, twice the density,
touch, a mobile user agent) through chromedriver's WebDriver API, with the
standard library only. Shared by the browser scripts."""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def fail(label, message):
    print(f"{label}: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Browser:
    def __init__(self, label, driver_port, chrome, profile):
        self.label = label
        self.base = f"http://127.0.0.1:{driver_port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/status", timeout=2)
                break
            except Exception:
                time.sleep(0.1)
        session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                         "--window-size=390,844"],
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}},
            },
        }}})
        self.session = f"/session/{session['sessionId']}"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response).get("value")
        except urllib.error.HTTPError as e:
            fail(self.label, f"WebDriver {method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}")
        except urllib.error.URLError as e:
            fail(self.label, f"chromedriver not reachable at {self.base} (see chromedriver.log): {e.reason}")

    def open(self, url):
        self.call("POST", self.session + "/url", {"url": url})

    def find(self, css):
        """A W3C element reference: {"element-6066-…": id}, as its id."""
        found = self.call("POST", self.session + "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css):
        self.call("POST", self.session + f"/element/{self.find(css)}/click", {})

    def run(self, script, *args):
        return self.call("POST", self.session + "/execute/sync", {"script": script, "args": list(args)})

    def text(self):
        return self.run("return document.body.innerText")

    def wait_for_text(self, words, seconds=15):
        deadline = time.time() + seconds
        while words not in (page := self.text()):
            if time.time() > deadline:
                fail(self.label, f"{words!r} did not appear:\n{page}")
            time.sleep(0.2)
        return page

    def close(self):
        self.call("DELETE", self.session)


def profile(work):
    return os.path.join(work, "chrome-profile")
