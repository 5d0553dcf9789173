"""Real-looking marketing exports, written deterministically: the files users actually get, quirks and all.

- ``retail.csv``: an online-retail export saved by European Excel: UTF-8 with a byte-order mark, `;` between
  fields, decimal commas with `.` thousands, `NA` for missing values, a description holding the separator
  (quoted), and two US date formats in one column (`12/06/2010 10:08` and `2/20/11 11:39`).
- ``uk_orders.csv``: naive local timestamps of a UK shop around month ends and both 2026 clock changes.
- ``ga_daily.csv``: a web-analytics export: four preamble lines before the header, compact `YYYYMMDD`
  dates, quoted numbers with thousands commas.
- ``fb_ads.tsv``: an ads export in Windows-1252, tab-separated, accented campaign names, `-` for no clicks,
  decimal commas.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

RETAIL_SPEC = """
version: 1
timezone: UTC
sources:
  retail:
    connector: csv
    path: retail.csv
    time: InvoiceDate
    separator: ";"
    decimal: comma
    thousands: "."
    null_values: [NA]
    time_format: ["%m/%d/%Y %H:%M", "%m/%d/%y %H:%M"]
kpis:
  revenue: {unit: currency, formula: sum(retail.Quantity * retail.UnitPrice), grain: month, dimensions: [Country]}
  orders: {unit: count, formula: count_distinct(retail.InvoiceNo), grain: month}
  missing_quantity: {unit: count, formula: count(retail where Quantity is null), grain: month}
"""

UK_SPEC = """
version: 1
timezone: {calendar}
sources:
  orders: {{connector: csv, path: uk_orders.csv, time: ordered_at, time_zone: Europe/London}}
kpis:
  orders: {{unit: count, formula: count(orders), grain: {grain}}}
  revenue: {{unit: currency, formula: sum(orders.amount), grain: {grain}}}
"""

GA_SPEC = """
version: 1
sources:
  ga: {connector: csv, path: ga_daily.csv, time: Date, skip_rows: 4, thousands: ",", time_format: "%Y%m%d"}
kpis:
  sessions: {unit: count, formula: sum(ga.Sessions), grain: month}
  bounce_rate: {unit: percent, formula: 100 * sum(ga.Bounces) / sum(ga.Sessions), grain: month}
"""

FB_SPEC = """
version: 1
sources:
  fb:
    connector: csv
    path: fb_ads.tsv
    time: Reporting starts
    separator: "\\\\t"
    encoding: cp1252
    decimal: comma
    null_values: ["-"]
kpis:
  cpc: {unit: currency, formula: sum(fb.`Amount spent (EUR)`) / sum(fb.`Link clicks`), grain: month, dimensions: [Campaign name]}
  clicks: {unit: count, formula: sum(fb.`Link clicks`), grain: month}
"""

COUNTRIES = ("United Kingdom", "France", "Germany", "EIRE", "Spain")


def _eu_number(value: float) -> str:
    """1234.5 -> '1.234,50' (European Excel)."""
    text = f"{value:,.2f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def write_retail(folder: Path, rows: int = 3000) -> Path:
    rng = random.Random(11)
    lines = ["InvoiceNo;StockCode;Description;Quantity;InvoiceDate;UnitPrice;CustomerID;Country"]
    start = dt.datetime(2010, 12, 1, 8, 26)
    for i in range(rows):
        when = start + dt.timedelta(minutes=rng.randrange(0, 373 * 24 * 60))
        # the export switched date formats mid-year, as the real one does
        if when < dt.datetime(2011, 2, 1):
            stamp = f"{when.month:02d}/{when.day:02d}/{when.year} {when:%H:%M}"
        else:
            stamp = f"{when.month}/{when.day}/{when:%y} {when:%H:%M}"
        quantity = "NA" if rng.random() < 0.03 else str(rng.choice([1, 2, 3, 6, 12, 24, 48, -1]))
        price = _eu_number(rng.choice([0.42, 1.25, 2.55, 3.39, 7.95, 1234.5, 18.0]))
        description = rng.choice(['"SET 2; RED RETROSPOT"', "WHITE METAL LANTERN", "HAND WARMER UNION JACK"])
        customer = "NA" if rng.random() < 0.1 else str(12000 + rng.randrange(500))
        lines.append(
            f"{536365 + i // 3};{85123 + rng.randrange(50)};{description};{quantity};{stamp};{price};"
            f"{customer};{rng.choice(COUNTRIES)}"
        )
    path = folder / "retail.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def write_uk_orders(folder: Path) -> Path:
    rng = random.Random(12)
    stamps = []
    for month in range(1, 13):
        last = (dt.date(2026, month % 12 + 1, 1) - dt.timedelta(days=1)) if month < 12 else dt.date(2026, 12, 31)
        for minute in (0, 29, 30, 59):
            stamps.append(dt.datetime.combine(last, dt.time(23, minute)))  # BST: 22:xx UTC, same day
            stamps.append(dt.datetime.combine(last, dt.time(0, minute)))
        stamps.append(dt.datetime(2026, month, 1, 0, 15))  # BST: 23:15 UTC the day before
    stamps += [dt.datetime(2026, 3, 29, 0, 30), dt.datetime(2026, 3, 29, 2, 30)]  # around the spring gap
    stamps += [dt.datetime(2026, 10, 25, 1, 30), dt.datetime(2026, 10, 25, 2, 30)]  # the repeated autumn hour
    lines = ["order_id,ordered_at,amount"]
    for i, stamp in enumerate(sorted(stamps)):
        lines.append(f"{1000 + i},{stamp:%Y-%m-%d %H:%M:%S},{rng.randrange(500, 20000) / 100:.2f}")
    path = folder / "uk_orders.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ga(folder: Path) -> Path:
    rng = random.Random(13)
    lines = [
        "# ----------------------------------------",
        "# All Web Site Data",
        "# Audience Overview",
        "# 20260101-20260430",
        "Date,Sessions,Users,Bounces",
    ]
    day = dt.date(2026, 1, 1)
    while day <= dt.date(2026, 4, 30):
        sessions = rng.randrange(800, 4000)
        users = int(sessions * 0.8)
        lines.append(f'{day:%Y%m%d},"{sessions:,}","{users:,}",{int(sessions * rng.uniform(0.3, 0.6))}')
        day += dt.timedelta(days=1)
    path = folder / "ga_daily.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fb(folder: Path) -> Path:
    rng = random.Random(14)
    lines = ["Reporting starts\tCampaign name\tImpressions\tLink clicks\tAmount spent (EUR)"]
    day = dt.date(2026, 3, 1)
    while day <= dt.date(2026, 5, 31):
        for campaign in ("Soldes d'été", "Rentrée", "Noël"):
            clicks = "-" if rng.random() < 0.1 else str(rng.randrange(0, 300))
            spend = f"{rng.randrange(0, 50000) / 100:.2f}".replace(".", ",")
            lines.append(f"{day}\t{campaign}\t{rng.randrange(1000, 90000)}\t{clicks}\t{spend}")
        day += dt.timedelta(days=1)
    path = folder / "fb_ads.tsv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def write_all(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_retail(folder)
    write_uk_orders(folder)
    write_ga(folder)
    write_fb(folder)
