#!/usr/bin/env python3
"""Writes ROWS realistic customers of a German shop to PATH: a `;`-separated
UTF-8 CSV with every column of config/customers.example.csv (owners, phone
consent, German dates in part). The same file every time.

Usage: customers.py PATH ROWS
"""
import csv, datetime as dt, random, sys

path, rows = sys.argv[1], int(sys.argv[2])
rnd = random.Random(20240601)  # same file every time
first = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Ismail",
         "Jana", "Jürgen", "Katharina", "Lukas", "Marie", "Niklas", "Olga", "Paul",
         "Quentin", "Rüya", "Sophie", "Tobias", "Ulrike", "Valentin", "Wiebke", "Yusuf",
         "Zoë", "Mehmet", "Anja", "Björn", "Chantal", "Dörte", "Emil", "Frieda"]
last = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
        "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
        "Çelik", "Kaya", "Nowak", "Kowalski", "Wong", "Öztürk", "Groß", "Kraus"]
domains = ["example.de", "example.com", "mail.example.de", "web.example.de", "posteo.example"]
stadtteile = ["Ehrenfeld", "Nippes", "Sülz", "Lindenthal", "Deutz", "Kalk", "Mülheim",
              "Südstadt", "Altstadt-Nord", "Belgisches Viertel", "Bayenthal", "Porz", ""]
sources = ["Anmeldeformular Theke", "Website", "Gewinnspiel 2023", "Kassenbon-QR", ""]
tag_sets = ["newsletter", "stammgast", "newsletter;stammgast", "", "mittagstisch",
            "newsletter;catering", "stammgast;geburtstag", "newsletter;stammgast;catering"]
tiers = ["Bronze", "Silber", "Gold", ""]
yes_no = ["ja", "nein"]
# Every name exists in Windows-1252 too, so all three files hold the same rows.
translit = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ç": "c", "ë": "e"})

def day(start_year, end_year):
    start = dt.date(start_year, 1, 1)
    return start + dt.timedelta(days=rnd.randrange((dt.date(end_year, 12, 31) - start).days))

def fmt(d):  # spreadsheets write both
    return d.strftime("%d.%m.%Y") if rnd.random() < 0.3 else d.isoformat()

with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, delimiter=";", lineterminator="\n")
    w.writerow("external_id;email;name;phone;locale;timezone;consent;consent_source;"
               "phone_consent;do_not_call;is_business;owner;tags;customer_since;birthday;"
               "points;tier;stadtteil".split(";"))
    for i in range(rows):
        fn, ln = rnd.choice(first), rnd.choice(last)
        local = f"{fn}.{ln}".lower().translate(translit)
        email = "" if rnd.random() < 0.03 else f"{local}.{i}@{rnd.choice(domains)}"
        english = rnd.random() < 0.12
        r = rnd.random()
        consent = ("ja" if r < 0.35 else "nein" if r < 0.55 else "" if r < 0.6
                   else fmt(day(2018, 2024)))
        is_business = rnd.random() < 0.05
        w.writerow([
            f"K-{100000 + i}",
            email,
            f"{ln} GmbH" if is_business else f"{fn} {ln}",
            "" if rnd.random() < 0.2 else f"+49 221 {rnd.randrange(1000000, 9999999)}",
            "en" if english else "de",
            ("Europe/London" if english and rnd.random() < 0.5 else "Europe/Berlin"),
            consent,
            rnd.choice(sources) if consent not in ("", "nein") else "",
            rnd.choice(yes_no),
            "ja" if rnd.random() < 0.03 else "nein",
            "ja" if is_business else "nein",
            rnd.choice(["", "", "maria", "jonas"]),
            rnd.choice(tag_sets),
            fmt(day(2005, 2024)),
            "" if rnd.random() < 0.25 else fmt(day(1940, 2005)),
            rnd.randrange(0, 3000),
            rnd.choice(tiers),
            rnd.choice(stadtteile),
        ])
