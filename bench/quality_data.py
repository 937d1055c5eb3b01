"""CSVs for the model-quality benchmark (bench/model_quality.py), also usable from tests.

Every writer is deterministic: the same arguments give the same bytes. Two are synthetic, built
so that the label depends on each kind of column the project has to handle (a category with a
comma in its values, money, booleans, dates and timestamps, free text, a mostly empty column) and
so that a linear model on well-transformed features does well but not perfectly; the third writes
one of scikit-learn's bundled datasets. scikit-learn is imported inside `write_sklearn` only.

    write_customers(path)            binary: does a customer churn (yes/no, ~12% yes)
    write_sensor_readings(path)      regression: a solar sensor's output in kW
    write_sklearn(name, path)        breast_cancer, digits or diabetes; returns the label column
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import random
from pathlib import Path


@contextlib.contextmanager
def _csv_writer(path: Path, header: list[str]):
    """A csv writer on `path` (its folder made), the header written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        yield writer


# --- customers -----------------------------------------------------------------------------

# Plan -> (share of customers, typical monthly spend in $, effect on the churn log-odds).
PLANS = {
    "Basic, monthly": (0.34, 25.0, 1.10),
    "Basic, yearly": (0.16, 20.0, -0.90),
    "Pro, monthly": (0.22, 70.0, 0.50),
    "Pro, yearly": (0.12, 60.0, -1.30),
    "Team, monthly": (0.10, 180.0, 0.10),
    "Team, yearly": (0.06, 160.0, -1.70),
}

# Words of the support notes that move the churn log-odds; every other word is neutral.
CHURN_WORDS = {
    "cancel": 3.2,
    "refund": 2.2,
    "expensive": 1.8,
    "competitor": 1.8,
    "slow": 1.2,
    "broken": 1.2,
    "outage": 1.0,
    "confusing": 0.8,
    "happy": -1.8,
    "great": -1.6,
    "love": -1.6,
    "thanks": -0.8,
    "helpful": -1.0,
    "upgrade": -1.2,
}

NEUTRAL_WORDS = (
    "the a an and or but to of in on for with about after before from at by is was were be "
    "been has have had it its this that they we i you he she our their my your me us them "
    "customer called asked said wrote emailed chat phone ticket account invoice billing payment "
    "card bank plan seat seats user users team admin login password reset email address report "
    "dashboard export import file files upload download sync mobile app browser page screen "
    "setting settings feature features option options question questions issue issues request "
    "requests update updated change changed moved added removed new old again still just also "
    "today yesterday week month monday friday morning afternoon evening time times minutes "
    "hours agent support manager office colleague integration api key keys data record records "
    "name names number trial renewal contract discount price order sent received waiting "
    "resolved open closed follow up next steps call back note notes looked checked fixed "
    "explained showed told wanted needed tried"
).split()

SIGNUP_START = dt.date(2022, 1, 3)
SIGNUP_DAYS = 700


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _note(rng: random.Random) -> tuple[str, float]:
    """A support note of 4-12 words and its effect on the churn log-odds: mostly neutral words,
    with a chance of one or two words that carry signal."""
    length = rng.randint(4, 12)
    words = [rng.choice(NEUTRAL_WORDS) for _ in range(length)]
    signal_words = list(CHURN_WORDS)
    effect = 0.0
    for _ in range(rng.choices([0, 1, 2], weights=[0.3, 0.5, 0.2])[0]):
        word = rng.choice(signal_words)
        words[rng.randrange(length)] = word
    for word in set(words):
        effect += CHURN_WORDS.get(word, 0.0)
    text = " ".join(words)
    return text[0].upper() + text[1:] + ".", effect


def write_customers(path: Path, rows: int = 5000, seed: int = 7) -> None:
    """A customer-churn table: will a subscriber cancel (`Churned`, yes/no)?

    What drives churn, as the log-odds of a logistic model plus an unobserved per-customer factor
    (so that no model gets near a perfect score):

    - `Plan` (values with a comma, e.g. "Basic, monthly"): monthly plans churn more than yearly;
    - `Monthly Spend ($)`: spending more than the plan's typical amount churns more;
    - `Autopay` (True/False): autopay churns much less;
    - `Region` (Region 01..40): each region has its own effect; a few churn clearly more;
    - `Tenure Months`: long-standing customers churn less (on the log scale of tenure);
    - `Signup Date` (ISO dates over ~700 days): December signups (holiday promotions) and weekend
      signups churn more, which only a model that reads the date's parts can use;
    - `Support Notes` (empty in ~85% of rows): words such as "cancel", "refund", "expensive",
      "slow" raise churn, "happy", "great", "love" lower it; the rest are neutral.

    About 12% of labeled rows churn; 2% of rows have no label. `Customer ID` is an identifier
    with no signal.
    """
    rng = random.Random(seed)
    region_effects = [rng.gauss(0.0, 0.6) for _ in range(40)]
    for churny in rng.sample(range(40), 4):
        region_effects[churny] += 1.6
    plan_names = list(PLANS)
    plan_weights = [PLANS[p][0] for p in plan_names]
    header = [
        "Customer ID",
        "Signup Date",
        "Plan",
        "Monthly Spend ($)",
        "Autopay",
        "Support Notes",
        "Region",
        "Tenure Months",
        "Churned",
    ]
    with _csv_writer(path, header) as writer:
        for i in range(rows):
            signup = SIGNUP_START + dt.timedelta(days=rng.randrange(SIGNUP_DAYS))
            plan = rng.choices(plan_names, weights=plan_weights)[0]
            _, typical_spend, plan_effect = PLANS[plan]
            spend_ratio = rng.lognormvariate(0.0, 0.35)
            spend = min(400.0, max(12.5, typical_spend * spend_ratio))
            autopay = rng.random() < 0.6
            region = rng.randrange(40)
            tenure = max(1, min(96, int(rng.expovariate(1 / 20.0)) + 1))
            note, note_effect = _note(rng) if rng.random() < 0.15 else ("", 0.0)

            logit = -2.7
            logit += plan_effect
            logit += 2.0 * math.log(spend_ratio)
            logit += -2.0 if autopay else 0.0
            logit += region_effects[region]
            logit += -1.1 * (math.log(tenure) - 2.5)
            logit += 2.0 if signup.month == 12 else 0.0
            logit += 1.1 if signup.weekday() >= 5 else 0.0
            logit += note_effect
            logit += rng.gauss(0.0, 0.3)  # what the table does not show
            churned = rng.random() < _logistic(logit)
            label = "" if rng.random() < 0.02 else ("yes" if churned else "no")

            writer.writerow(
                [
                    f"C{i + 1:06d}",
                    signup.isoformat(),
                    plan,
                    f"{spend:.2f}",
                    "True" if autopay else "False",
                    note,
                    f"Region {region + 1:02d}",
                    tenure,
                    label,
                ]
            )


# --- sensor readings -----------------------------------------------------------------------

# Site -> installed capacity in kW (sunnier and bigger sites produce more).
SITES = {
    "Alder Creek": 4.0,
    "Birch Hollow": 5.5,
    "Cedar Flats": 6.0,
    "Dune Ridge": 7.5,
    "Elm Crossing": 4.5,
    "Fox Meadow": 5.0,
    "Granite Pass": 6.5,
    "Heron Bay": 3.5,
    "Iron Mesa": 8.0,
    "Juniper Point": 5.0,
    "Kestrel Field": 6.0,
    "Larch Valley": 4.0,
    "Maple Bend": 5.5,
    "North Quarry": 7.0,
    "Osprey Lake": 4.5,
}

# Technician comment words -> effect on output, as a fraction of the site's capacity.
COMMENT_WORDS = {
    "corroded": -0.40,
    "dusty": -0.30,
    "cracked": -0.35,
    "shaded": -0.25,
    "loose": -0.15,
    "replaced": 0.20,
    "clean": 0.15,
    "new": 0.10,
}

COMMENT_FILLER = (
    "panel panels inverter cable cables bracket mount frame connector junction box checked "
    "inspected visited site array string row north south east west side left right top bottom "
    "looked fine ok some minor slightly very the a on at near and with was were is found "
    "tightened cleaned noted reported after before rain storm wind snow morning visit"
).split()

READING_START = 1_700_000_000
READING_END = 1_730_000_000
INSTALLED_START = dt.datetime(2019, 1, 1)
INSTALLED_DAYS = 4 * 365


def _comment(rng: random.Random) -> tuple[str, float]:
    """A technician's comment and its effect on output (a fraction of capacity)."""
    length = rng.randint(4, 10)
    words = [rng.choice(COMMENT_FILLER) for _ in range(length)]
    for _ in range(rng.choices([0, 1, 2], weights=[0.25, 0.55, 0.2])[0]):
        words[rng.randrange(length)] = rng.choice(list(COMMENT_WORDS))
    effect = sum(COMMENT_WORDS.get(w, 0.0) for w in set(words))
    text = " ".join(words)
    return text[0].upper() + text[1:] + ".", effect


def write_sensor_readings(path: Path, rows: int = 4000, seed: int = 11) -> None:
    """Readings of solar sensors: how many kW a site produced (`Output kW`) at a moment.

    - `reading_time` (epoch seconds, 2023-11 to 2024-10): output follows daylight, zero at night
      and highest at noon (UTC is the sites' local time), with a seasonal swing; a model sees it
      only through the hour of day (a cycle) and the day of year;
    - `Site` (15 names): each has its own capacity, which scales everything else;
    - `Ambient Temp (C)`: panels lose ~0.4% per degree above 25 C; `Humidity %`: haze lowers
      output a little;
    - `Has Shield` (yes/no): a shield keeps ~6% more output;
    - `Installed At` (date-time): panels lose ~1.5% a year from installation;
    - `Technician Comment` (in ~60% of rows): "corroded", "dusty", "cracked", "shaded" lower
      output, "replaced", "clean", "new" raise it; the other words are filler.

    The effects multiply (capacity x daylight x losses), so a linear model on the features fits
    well but not perfectly; Gaussian noise of ~0.35 kW stands for what the table does not show.
    """
    rng = random.Random(seed)
    site_names = list(SITES)
    header = [
        "reading_time",
        "Installed At",
        "Technician Comment",
        "Site",
        "Has Shield",
        "Ambient Temp (C)",
        "Humidity %",
        "Output kW",
    ]
    with _csv_writer(path, header) as writer:
        for _ in range(rows):
            when = rng.randrange(READING_START, READING_END)
            moment = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
            hour = moment.hour + moment.minute / 60.0
            day_of_year = moment.timetuple().tm_yday
            season = math.cos(2 * math.pi * (day_of_year - 172) / 365.25)  # 1 in June
            daylight = max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0)) * (0.8 + 0.2 * season)

            site = rng.choice(site_names)
            capacity = SITES[site]
            installed = INSTALLED_START + dt.timedelta(
                days=rng.randrange(INSTALLED_DAYS), minutes=15 * rng.randrange(4 * 24)
            )
            age_years = max(0.0, (moment.replace(tzinfo=None) - installed).days / 365.25)
            shield = rng.random() < 0.5
            temp = 14.0 + 9.0 * season + 6.0 * daylight + rng.gauss(0.0, 4.0)
            humidity = min(100.0, max(15.0, 60.0 - 1.2 * (temp - 15.0) + rng.gauss(0.0, 12.0)))
            comment, comment_effect = _comment(rng) if rng.random() < 0.6 else ("", 0.0)

            factor = 1.0
            factor *= 1.0 - 0.004 * max(0.0, temp - 25.0)
            factor *= 1.0 - 0.002 * (humidity - 50.0)
            factor *= 1.06 if shield else 1.0
            factor *= 1.0 - 0.015 * age_years
            factor *= 1.0 + comment_effect
            output = capacity * daylight * factor + 0.3 + rng.gauss(0.0, 0.35)

            writer.writerow(
                [
                    when,
                    installed.strftime("%Y-%m-%d %H:%M:%S"),
                    comment,
                    site,
                    "yes" if shield else "no",
                    f"{temp:.1f}",
                    f"{humidity:.1f}",
                    f"{max(0.0, output):.3f}",
                ]
            )


# --- scikit-learn's bundled datasets -----------------------------------------------------------

SKLEARN_SETS = ("breast_cancer", "digits", "diabetes")


def write_sklearn(name: str, path: Path) -> str:
    """Writes scikit-learn's bundled dataset `name` as a CSV with a header; returns the label
    column's name. No download: these ship inside the scikit-learn package.

    - breast_cancer: binary, 569 rows, 30 measurements; label `diagnosis` (malignant/benign);
    - digits: multiclass, 1,797 8x8 images as `pixel_0`..`pixel_63` (0-16); label `digit` (0-9);
    - diabetes: regression, 442 rows, 10 (scaled) measurements; label `progression`, a disease
      measure one year after baseline.
    """
    from sklearn import datasets

    if name == "breast_cancer":
        bunch = datasets.load_breast_cancer()
        columns = [str(c) for c in bunch.feature_names]
        label = "diagnosis"
        labels = [str(bunch.target_names[t]) for t in bunch.target]
    elif name == "digits":
        bunch = datasets.load_digits()
        columns = [f"pixel_{i}" for i in range(bunch.data.shape[1])]
        label = "digit"
        labels = [str(int(t)) for t in bunch.target]
    elif name == "diabetes":
        bunch = datasets.load_diabetes()
        columns = [str(c) for c in bunch.feature_names]
        label = "progression"
        labels = [repr(float(t)) for t in bunch.target]
    else:
        raise ValueError(f"unknown scikit-learn dataset {name!r}; one of {', '.join(SKLEARN_SETS)}")
    header = [*columns, label]
    bad = [c for c in header if any(ch in c for ch in ',"\n\r') or c != c.strip() or not c]
    if bad or len(set(header)) != len(header):
        raise ValueError(f"{name}: column names unfit for a CSV header: {bad or header}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    integral = name == "digits"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for features, target in zip(bunch.data, labels, strict=True):
            values = [str(int(v)) if integral else repr(float(v)) for v in features]
            writer.writerow([*values, target])
    return label
