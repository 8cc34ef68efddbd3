#!/usr/bin/env python3
"""Compares outreach's schedule occurrences with croniter's, an independent
cron implementation, over many expressions, zones and years, around every DST
transition and on random days.

Usage: compare_croniter.py PATH_TO_OCCURRENCES_EXAMPLE [--cases N] [--seed S]

The one intended difference: croniter runs a wall-clock time that the autumn
change repeats twice; outreach runs it once, at its first occurrence. So
croniter's second pass of a repeated hour is dropped before comparing. Exits 1
on any other difference and prints the first ones.
"""
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute shift
    "America/Havana",  # transitions at midnight
    "America/Santiago",  # transitions at midnight, southern hemisphere
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",  # no DST
    "UTC",
]
MINUTES = ["0", "30", "59", "*/15", "*/30", "10,40", "5-10", "15"]
HOURS = ["*", "0", "1", "2", "3", "1-3", "2,3", "*/2", "9", "23", "0-4"]
DAYS = ["*", "*", "*", "1", "13", "1-7"]
MONTHS = ["*", "*", "*", "3", "10", "3,10", "4-9"]
WEEKDAYS = ["*", "*", "*", "0", "1-5", "6", "Sun", "Mon"]
COUNT = 6


def transitions(zone, year):
    """UTC instants around which the zone's offset changes in `year`."""
    tz = ZoneInfo(zone)
    t = datetime(year, 1, 1, tzinfo=timezone.utc)
    end = datetime(year + 1, 1, 1, tzinfo=timezone.utc)
    found, last = [], t.astimezone(tz).utcoffset()
    while t < end:
        t += timedelta(hours=1)
        off = t.astimezone(tz).utcoffset()
        if off != last:
            found.append(t)
            last = off
    return found


def expected(expr, zone, start, count):
    tz = ZoneInfo(zone)
    it = croniter(expr, start.astimezone(tz))
    out, latest_wall = [], start.astimezone(tz).replace(tzinfo=None)
    while len(out) < count:
        t = it.get_next(datetime)
        wall = t.replace(tzinfo=None)
        if wall <= latest_wall:
            continue  # the second pass of a repeated autumn hour
        latest_wall = wall
        out.append(t.astimezone(timezone.utc))
    return out


def main():
    example = sys.argv[1]
    cases = int(sys.argv[sys.argv.index("--cases") + 1]) if "--cases" in sys.argv else 3000
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 20261202
    rng = random.Random(seed)
    starts = []
    for zone in ZONES:
        for year in range(2025, 2037):
            for t in transitions(zone, year):
                starts.append((zone, t - timedelta(hours=rng.choice([1, 3, 6, 26]))))
    work = []
    for i in range(cases):
        if i % 3 == 0:
            zone = rng.choice(ZONES)
            start = datetime(rng.randrange(2025, 2037), 1, 1, tzinfo=timezone.utc) + timedelta(
                minutes=rng.randrange(365 * 24 * 60)
            )
        else:
            zone, start = rng.choice(starts)
        expr = " ".join(
            [rng.choice(MINUTES), rng.choice(HOURS), rng.choice(DAYS), rng.choice(MONTHS), rng.choice(WEEKDAYS)]
        )
        work.append((expr, zone, start))
    stdin = "".join(
        f"{e}\t{z}\t{s.isoformat()}\t{COUNT}\n" for e, z, s in work
    )
    ours = subprocess.run([example], input=stdin, capture_output=True, text=True, check=True).stdout.splitlines()
    if len(ours) != len(work):
        sys.exit(f"expected {len(work)} answers, got {len(ours)}")
    failures = []
    for (expr, zone, start), line in zip(work, ours):
        want = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in expected(expr, zone, start, COUNT)]
        got = line.split("\t") if line else []
        if got != want:
            tz = ZoneInfo(zone)
            local = lambda xs: [datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).astimezone(tz).strftime("%m-%d %H:%M%z") for x in xs if not x.startswith("error")]
            failures.append(f"{expr!r} in {zone} after {start.astimezone(tz)}:\n  croniter: {local(want)}\n  outreach: {local(got) if not line.startswith('error') else line}")
    print(f"schedules: {len(work) - len(failures)} of {len(work)} cases agree with croniter (seed {seed})")
    for f in failures[:15]:
        print(f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
