"""Generate the sample spreadsheets that `bulk import samples --sandbox` loads.

The data is small but hostile in the ways real spreadsheets are: ids with leading zeros (and two
ids, `00042` and `000042`, that only differ by them), accented and non-Latin names, commas,
double quotes and newlines inside cells, JSON cells next to `;`-separated ones, mixed boolean
spellings and mixed date formats. Every value is nevertheless valid for the Pivotal API, so an
import of these files must finish with zero invalid or failed rows.

The output is deterministic (fixed seed, no clock): running the script twice writes identical
files. It writes next to itself:

    customers.csv, contacts.csv, onboardings.csv          UTF-8, RFC 4180 quoting, LF
    parquet/customers.parquet, contacts.parquet, ...      the same frames, every column String

and then reads everything back to check the round trip and the dataset's invariants.

Run from the repository root:  python samples/generate.py
"""

from __future__ import annotations

import json
import random
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

import polars as pl

from bulk.importing.rows import predicted_slug
from bulk.schema import CUSTOMER_STATUSES, ONBOARDING_PHASES, ONBOARDING_STATES

SEED = 20260315
HERE = Path(__file__).parent
PARQUET_DIR = HERE / "parquet"

Row = dict[str, str | None]
T = TypeVar("T")

CUSTOMER_COLUMNS = (
    "external_id",
    "name",
    "slug",
    "domain",
    "status",
    "plan",
    "owner_id",
    "mrr",
    "hubspot_company_id",
    "stripe_customer_id",
    "tags",
    "metadata",
    "metadata.region",
    "metadata.segment",
)
CONTACT_COLUMNS = (
    "customer_external_id",
    "name",
    "email",
    "title",
    "phone",
    "is_primary",
    "labels",
)
ONBOARDING_COLUMNS = (
    "customer_external_id",
    "name",
    "phase",
    "state",
    "target_launch_date",
    "notes",
    "csm_id",
    "waiting_on_customer",
    "reminders_enabled",
    "reminder_frequency_days",
)

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 64
NAME_MAX_LENGTH = 200


class Company(NamedTuple):
    name: str
    domain: str
    slug: str | None = None
    """Given only where the derived slug is unusable or the owner wants a short one."""


COMPANIES = (
    Company("Café Crème SARL", "cafe-creme.fr"),
    Company("Müller & Söhne GmbH", "mueller-soehne.de", "mueller-soehne"),
    Company("Société Générale Digital", "sg-digital.fr"),
    Company("Zoë's Bakery", "zoesbakery.co.uk"),
    Company("Acme, Inc.", "acme.com", "acme"),
    Company("Acme Corp Europe", "acme-corp.eu"),
    Company('The "Best" Widgets', "bestwidgets.io", "best-widgets"),
    Company("Ødegaard Fiskeri AS", "odegaard-fiskeri.no"),
    Company("Nordlicht Ærø ApS", "nordlicht.dk"),
    Company("Łódź Logistics sp. z o.o.", "lodz-logistics.pl"),
    Company("São Paulo Têxteis Ltda.", "sptexteis.com.br"),
    Company("Smørrebrød & Co", "smorrebrod.dk"),
    Company("Crêperie Bretonne", "creperie-bretonne.fr"),
    Company("Fjällräven Outfitters AB", "fjallraven-outfitters.se"),
    Company("Ñandú Software S.L.", "nandu.es"),
    Company("Brasserie Ångström", "angstrom.be"),
    Company("Dvořák Audio s.r.o.", "dvorak-audio.cz"),
    Company("İstanbul Tekstil A.Ş.", "istanbultekstil.com.tr"),
    Company("Bäckerei Straßburger", "baeckerei-strassburger.de"),
    Company("東京デザイン株式会社", "tokyo-design.co.jp", "tokyo-design"),
    Company("Sakura 桜 Design KK", "sakura-design.jp"),
    Company("O'Reilly & Sons Ltd", "oreilly-sons.ie"),
    Company("42 Analytics", "42analytics.io"),
    Company("Umbrella Health, Ltd.", "umbrella-health.com"),
    Company("Pied Piper, Inc.", "piedpiper.com"),
    Company(
        "Internationale Gesellschaft für Angewandte Forschung und Entwicklung "
        "im Bereich der Erneuerbaren Energien e.V.",
        "igafe.de",
    ),
    Company("Globex Corporation", "globex.com"),
    Company("Initech LLC", "initech.com"),
    Company("Stark Industrial Supply", "starksupply.com"),
    Company("Wayne Logistics", "waynelogistics.com"),
    Company("Hooli", "hooli.xyz"),
    Company("Vandelay Industries", "vandelay.com"),
    Company("Soylent Foods", "soylentfoods.com"),
    Company("Tyrell Robotics", "tyrell-robotics.com"),
    Company("Cyberdyne Systems", "cyberdyne.io"),
    Company("Massive Dynamic", "massivedynamic.com"),
    Company("Aperture Science Labs", "aperture-labs.com"),
    Company("Black Mesa Research", "blackmesa.org"),
    Company("Duff Brewing Co.", "duffbrewing.com"),
    Company("Oceanic Airlines", "oceanic-air.com"),
    Company("Monarch Solutions", "monarch-solutions.com"),
    Company("Bluth Company", "bluthcompany.com"),
    Company("Dunder Mifflin Paper", "dundermifflin.com"),
    Company("Prestige Worldwide", "prestige-worldwide.com"),
    Company("Los Pollos Hermanos", "lospolloshermanos.com"),
    Company("Wonka Confections", "wonka.co.uk"),
    Company("Buy n Large", "buynlarge.com"),
    Company("Nakatomi Trading", "nakatomi.co.jp"),
    Company("Virtucon", "virtucon.com"),
    Company("Sterling Cooper Draper Pryce", "scdp.com", "scdp"),
)

PLANS = ("free", "starter", "growth", "growth", "scale", "enterprise", "Enterprise (annual)")
MULTILINE_PLAN = "Enterprise (annual)\nInvoiced quarterly, net 30"
OWNER_IDS = ("usr_4f8a2c91", "usr_0b73e5d2", "usr_9c1d6a07", "usr_07e2b4f3", "usr_d5a0c8e6")
CSM_IDS = ("usr_0b73e5d2", "usr_a3f7c2e9", "usr_05d9b1c4", "usr_e8c2a6f0")
TAGS = ("enterprise", "emea", "amer", "apac", "pilot", "vip", "renewal-q3", "partner", "beta")
REGIONS = ("emea", "amer", "apac", "latam")
SEGMENTS = ("smb", "mid-market", "enterprise")
SPECIAL_TAGS = ('["enterprise", "emea"]', '["partners, tier 1", "beta"]')
METADATA_OBJECTS: tuple[dict[str, object], ...] = (
    {"region": "emea", "tier": 2},
    {"tier": 1, "renewal": "2026-11-30", "champions": ["Ana", "Jürgen"]},
    {"legacy_id": "A-00017", "source": 'imported from "old CRM", 2024'},
    {"billing": {"currency": "EUR", "po_required": True}, "hq": "Zürich"},
    {"tier": 3, "trial": False},
)
PRETTY_METADATA: dict[str, object] = {"region": "apac", "tier": 1, "languages": ["ja", "en"]}

FIRST_NAMES = (
    "Ana", "Björn", "Chloé", "Małgorzata", "Jürgen", "Renée", "Søren", "Siobhán", "Íñigo",
    "Ľubomír", "Émilie", "Noémie", "João", "Agnès", "Kenji", "Priya", "Liam", "Olivia", "Mateo",
    "Grace", "Hannah", "Omar", "Lucía", "Tomás", "Aoife", "Daniel", "Sarah", "Mehmet", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Dubois", "Åkesson", "Wójcik", "Weiß", "Fontaine", "Kierkegård", "O'Connor", "Novák",
    "Conceição", "Müller", "García", "Nakamura", "Patel", "Smith", "Nguyễn", "Brontë", "Öztürk",
    "Kowalski", "Rossi", "Lindqvist", "Martínez", "Schröder", "Mercier", "Costa", "Byrne",
)  # fmt: skip
REQUIRED_CONTACT_NAMES = ("José Álvarez", "Zoë Ødegaard", "François Lefèvre")
TITLES = (
    "CEO", "CTO", "Head of Operations", "VP, Customer Success", "Directrice financière",
    "Geschäftsführer", "IT Manager", "Onboarding lead", 'Product owner ("Platform")',
    "Office manager",
)  # fmt: skip
LABELS = ("billing", "technical", "decision-maker", "champion", "legal", "it", "exec-sponsor")
SPECIAL_LABELS = ('["technical", "champion"]', '["billing", "it, security"]')
# ASCII folding for e-mail local parts: characters NFKD does not decompose.
TRANSLITERATION = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d"}
)

ONBOARDING_NAME_TEMPLATES = ("{name} onboarding", "Rollout: {name}", "Pilot: {name}")
SPECIAL_NOTES = (
    "Waiting on SSO metadata from IT.\nFollow up Monday, 9:00 CET",
    'Customer asked for "white glove" migration, see ticket #4821',
    'Line 1: data import done\nLine 2: "templates" pending, owner François',
    "Kick-off held on site, Paris office",
)
NOTES = (
    "Blocked: legal review of the DPA, expected end of month",
    "Phase 2 scope: reporting, exports, API access",
    "Contact: Zoë (ops) — prefers email over calls",
    "Training sessions booked",
)
LAUNCH_START = date(2026, 1, 5)


# -- helpers -------------------------------------------------------------------------------


def ascii_fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(TRANSLITERATION))
    return "".join(char for char in folded if not unicodedata.combining(char))


def maybe(rng: random.Random, value: str, probability: float) -> str | None:
    """`value` with the given probability, otherwise None (an empty cell)."""
    return value if rng.random() < probability else None


def covering(rng: random.Random, choices: Sequence[str], count: int) -> list[str]:
    """`count` values drawn from `choices`, each choice appearing at least once, shuffled."""
    values = list(choices) + [rng.choice(choices) for _ in range(count - len(choices))]
    rng.shuffle(values)
    return values


def with_specials(rng: random.Random, specials: Sequence[T], draw: Sequence[T]) -> list[T]:
    """`draw` with its first items replaced by `specials`, then shuffled."""
    values = [*specials, *draw[len(specials) :]]
    rng.shuffle(values)
    return values


def join_list(rng: random.Random, pool: Sequence[str], most: int) -> str:
    return ";".join(rng.sample(pool, rng.randint(1, most)))


# -- customers -----------------------------------------------------------------------------


def external_ids(rng: random.Random, count: int) -> list[str]:
    """Unique ids, most with leading zeros; `00042` and `000042` differ only by them."""
    ids = ["000123", "00042", "000042"]
    numbers = {int(value) for value in ids}
    while len(ids) < count:
        width = rng.choice((5, 6, 6))
        padded = rng.random() < 0.85  # below 10**(width-1), so formatting adds a leading zero
        number = (
            rng.randint(1, 10 ** (width - 1) - 1)
            if padded
            else rng.randrange(10 ** (width - 1), 10**width)
        )
        if number not in numbers:
            numbers.add(number)
            ids.append(f"{number:0{width}d}")
    rng.shuffle(ids)
    return ids


def customer_tags(rng: random.Random) -> str | None:
    return maybe(rng, join_list(rng, TAGS, 3), 0.75)


def customer_metadata(rng: random.Random, index: int) -> str | None:
    """A JSON object for a few rows; one is pretty-printed over several lines."""
    if index == 3:
        return json.dumps(PRETTY_METADATA, indent=2, ensure_ascii=False)
    if index % 9 == 5:
        return json.dumps(METADATA_OBJECTS[index // 9 % len(METADATA_OBJECTS)], ensure_ascii=False)
    return None


def metadata_cell(
    rng: random.Random, metadata: str | None, key: str, pool: Sequence[str]
) -> str | None:
    """A `metadata.<key>` cell, left empty when the JSON column already sets that key."""
    if metadata is not None and key in json.loads(metadata):
        return None
    return maybe(rng, rng.choice(pool), 0.8)


def build_customer(
    rng: random.Random, index: int, external_id: str, company: Company, status: str
) -> Row:
    metadata = customer_metadata(rng, index)
    return {
        "external_id": external_id,
        "name": company.name,
        "slug": company.slug,
        "domain": company.domain,
        "status": status,
        "plan": MULTILINE_PLAN if index == 7 else maybe(rng, rng.choice(PLANS), 0.9),
        "owner_id": maybe(rng, rng.choice(OWNER_IDS), 0.85),
        "mrr": maybe(rng, str(rng.choice((0, rng.randrange(49, 25000)))), 0.8),
        "hubspot_company_id": maybe(rng, str(rng.randint(10**9, 10**10 - 1)), 0.6),
        "stripe_customer_id": maybe(
            rng, "cus_" + "".join(rng.choices(string.ascii_letters + string.digits, k=14)), 0.7
        ),
        "tags": SPECIAL_TAGS[index // 20] if index % 20 == 11 else customer_tags(rng),
        "metadata": metadata,
        "metadata.region": metadata_cell(rng, metadata, "region", REGIONS),
        "metadata.segment": metadata_cell(rng, metadata, "segment", SEGMENTS),
    }


def build_customers(rng: random.Random) -> list[Row]:
    ids = external_ids(rng, len(COMPANIES))
    statuses = covering(rng, CUSTOMER_STATUSES, len(COMPANIES))
    return [
        build_customer(rng, index, external_id, company, status)
        for index, (external_id, company, status) in enumerate(
            zip(ids, COMPANIES, statuses, strict=True)
        )
    ]


# -- contacts ------------------------------------------------------------------------------


def contact_counts(rng: random.Random, customers: int, total: int) -> list[int]:
    """How many contacts each customer gets (0 to 5), summing to `total`."""
    counts = [rng.choice((0, 1, 2, 2, 2, 3, 3, 4)) for _ in range(customers)]
    while sum(counts) != total:
        index = rng.randrange(customers)
        if sum(counts) < total and counts[index] < 5:
            counts[index] += 1
        elif sum(counts) > total and counts[index] > 0:
            counts[index] -= 1
    return counts


def contact_names(rng: random.Random, count: int) -> list[str]:
    draw = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(count)]
    return with_specials(rng, REQUIRED_CONTACT_NAMES, draw)


def email_for(rng: random.Random, name: str, domain: str, taken: set[str]) -> str:
    """A plausible address at the customer's domain, unique (case-insensitively) across the file."""
    first, _, last = ascii_fold(name).lower().replace("'", "").partition(" ")
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", first, f"{first}.{last}+pivotal"))
    email, suffix = f"{local}@{domain}", 2
    while email in taken:
        email, suffix = f"{local}{suffix}@{domain}", suffix + 1
    taken.add(email)
    return email


def mixed_case(email: str) -> str:
    """`liam.rossi@acme.com` → `Liam.Rossi@Acme.com`: the API stores it lowercase."""
    local, _, domain = email.partition("@")
    host, _, rest = domain.partition(".")
    return f"{local.title()}@{host.title()}.{rest}"


def phone(rng: random.Random) -> str:
    d = "".join(rng.choices(string.digits, k=8))
    formats = (
        f"+33 1 {d[0:2]} {d[2:4]} {d[4:6]} {d[6:8]}",
        f"0049 30 {d[:6]}",
        f"+44 20 {d[:4]} {d[4:]}",
        f"020 {d[:4]} {d[4:]}",
        f"06 {d[0:2]} {d[2:4]} {d[4:6]} {d[6:8]}",
        f"+1 (415) 555-{d[:4]}",
        f"+81 3-{d[:4]}-{d[4:]}",
        f"0034 91 {d[:3]} {d[3:6]}",
    )
    return rng.choice(formats)


def contact_labels(rng: random.Random) -> str | None:
    if rng.random() < 0.06:
        return rng.choice(SPECIAL_LABELS)
    return maybe(rng, join_list(rng, LABELS, 2), 0.6)


def primary_flags(rng: random.Random, count: int) -> list[str | None]:
    """`is_primary` cells for one customer's contacts: at most one true, mixed spellings."""
    flags = [maybe(rng, rng.choice(FALSE_WORDS), 0.7) for _ in range(count)]
    if count and rng.random() < 0.8:
        flags[rng.randrange(count)] = rng.choice(TRUE_WORDS)
    return flags


def build_contacts(rng: random.Random, customers: list[Row], total: int = 100) -> list[Row]:
    counts = contact_counts(rng, len(customers), total)
    names = iter(contact_names(rng, total))
    taken: set[str] = set()
    rows: list[Row] = []
    for customer, count in zip(customers, counts, strict=True):
        domain = customer["domain"] or "example.com"
        for flag in primary_flags(rng, count):
            name = next(names)
            rows.append(
                {
                    "customer_external_id": customer["external_id"],
                    "name": name,
                    "email": email_for(rng, name, domain, taken),
                    "title": maybe(rng, rng.choice(TITLES), 0.8),
                    "phone": maybe(rng, phone(rng), 0.75),
                    "is_primary": flag,
                    "labels": contact_labels(rng),
                }
            )
    rng.shuffle(rows)
    for row in rows[:2]:
        row["email"] = mixed_case(row["email"] or "")
    return rows


# -- onboardings ---------------------------------------------------------------------------


def launch_date(rng: random.Random) -> str | None:
    """An ISO date, an ISO datetime in UTC (`Z`), rarely one with an offset, or empty."""
    day = LAUNCH_START + timedelta(days=rng.randint(0, 270))
    roll = rng.random()
    if roll < 0.45:
        return day.isoformat()
    clock = f"{rng.randint(8, 17):02d}:{rng.choice((0, 15, 30, 45)):02d}:00"
    if roll < 0.88:
        return f"{day.isoformat()}T{clock}Z"
    if roll < 0.93:
        return f"{day.isoformat()}T{clock}+02:00"
    return None


def build_onboarding(
    rng: random.Random, customer: Row, phase: str, state: str, notes: str | None
) -> Row:
    reminders = rng.random() < 0.8
    return {
        "customer_external_id": customer["external_id"],
        "name": rng.choice(ONBOARDING_NAME_TEMPLATES).format(name=customer["name"]),
        "phase": phase,
        "state": state,
        "target_launch_date": launch_date(rng),
        "notes": notes,
        "csm_id": maybe(rng, rng.choice(CSM_IDS), 0.9),
        "waiting_on_customer": "true" if state == "waiting" or rng.random() < 0.1 else "false",
        "reminders_enabled": "true" if reminders else "false",
        "reminder_frequency_days": str(rng.choice((1, 1, 2, 3, 7, 14))) if reminders else None,
    }


def build_onboardings(rng: random.Random, customers: list[Row], total: int = 40) -> list[Row]:
    chosen = rng.sample(customers, total)
    phases = covering(rng, ONBOARDING_PHASES, total)
    states = covering(rng, ONBOARDING_STATES, total)
    notes = with_specials(
        rng, SPECIAL_NOTES, [maybe(rng, rng.choice(NOTES), 0.6) for _ in range(total)]
    )
    return [
        build_onboarding(rng, customer, phase, state, note)
        for customer, phase, state, note in zip(chosen, phases, states, notes, strict=True)
    ]


# -- output --------------------------------------------------------------------------------


def to_frame(rows: list[Row], columns: Sequence[str]) -> pl.DataFrame:
    """An all-String frame built column by column (never inferred from dicts)."""
    return pl.DataFrame(
        {column: [row[column] for row in rows] for column in columns},
        schema={column: pl.String for column in columns},
    )


def write(frame: pl.DataFrame, stem: str) -> None:
    frame.write_csv(HERE / f"{stem}.csv", line_terminator="\n", quote_style="necessary")
    frame.write_parquet(PARQUET_DIR / f"{stem}.parquet")


# -- checks --------------------------------------------------------------------------------


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"samples check failed: {message}")


def check_round_trip(frame: pl.DataFrame, stem: str) -> None:
    csv_path = HERE / f"{stem}.csv"
    raw = csv_path.read_bytes()
    require(not raw.startswith(b"\xef\xbb\xbf"), f"{stem}.csv has a BOM")
    require(b"\r" not in raw, f"{stem}.csv has CR line ends")
    require(
        pl.read_csv(csv_path, infer_schema=False).equals(frame), f"{stem}.csv does not round-trip"
    )
    parquet = pl.read_parquet(PARQUET_DIR / f"{stem}.parquet")
    require(parquet.equals(frame), f"{stem}.parquet differs")
    require(
        all(dtype == pl.String for dtype in parquet.dtypes),
        f"{stem}.parquet has non-String columns",
    )


def non_null(frame: pl.DataFrame, column: str) -> list[str]:
    return [value for value in frame[column].to_list() if value is not None]


def check_customers(customers: pl.DataFrame) -> None:
    ids = customers["external_id"].to_list()
    require(len(set(ids)) == len(ids), "duplicate external_id")
    require(sum(value.startswith("0") for value in ids) >= len(ids) // 2, "too few leading zeros")
    slugs = [
        given or predicted_slug(name)
        for given, name in zip(customers["slug"], customers["name"], strict=True)
    ]
    require(all(SLUG_PATTERN.match(slug) for slug in slugs), "an unusable slug")
    require(
        len(set(slugs)) == len(slugs),
        f"slugs collide: {[s for s, n in Counter(slugs).items() if n > 1]}",
    )
    names = customers["name"].to_list()
    require(
        all(1 <= len(name) <= NAME_MAX_LENGTH and "\n" not in name for name in names), "bad name"
    )
    require(set(customers["status"]) <= set(CUSTOMER_STATUSES), "bad status")
    require(all(value.isdigit() for value in non_null(customers, "mrr")), "bad mrr")
    require(all(domain == domain.lower() for domain in customers["domain"]), "domain not lowercase")
    for text in non_null(customers, "metadata"):
        require(isinstance(json.loads(text), dict), "metadata is not a JSON object")
    for text in non_null(customers, "tags"):
        require(
            not text.startswith("[") or isinstance(json.loads(text), list),
            "tags JSON is not a list",
        )


def check_contacts(contacts: pl.DataFrame, customer_ids: set[str]) -> None:
    require(set(contacts["customer_external_id"]) <= customer_ids, "contact of an unknown customer")
    emails = [email.lower() for email in contacts["email"]]
    require(all(EMAIL_PATTERN.match(email) for email in emails), "invalid email")
    keys = list(zip(contacts["customer_external_id"], emails, strict=True))
    require(len(set(keys)) == len(keys), "duplicate email within a customer")
    require(
        set(non_null(contacts, "is_primary")) <= set(TRUE_WORDS + FALSE_WORDS), "bad is_primary"
    )
    primaries = Counter(
        customer
        for customer, flag in zip(
            contacts["customer_external_id"], contacts["is_primary"], strict=True
        )
        if flag in TRUE_WORDS
    )
    require(max(primaries.values(), default=0) <= 1, "two primaries for one customer")
    require(any(email != email.lower() for email in contacts["email"]), "no MixedCase email")


def check_onboardings(onboardings: pl.DataFrame, customer_ids: set[str]) -> None:
    owners = onboardings["customer_external_id"].to_list()
    require(set(owners) <= customer_ids, "onboarding of an unknown customer")
    require(len(set(owners)) == len(owners), "two onboardings for one customer")
    require(set(onboardings["phase"]) <= set(ONBOARDING_PHASES), "bad phase")
    require(set(onboardings["state"]) <= set(ONBOARDING_STATES), "bad state")
    for text in non_null(onboardings, "target_launch_date"):
        require(
            re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2}))?", text)
            is not None,
            text,
        )
    require(
        all(int(days) >= 1 for days in non_null(onboardings, "reminder_frequency_days")),
        "bad frequency",
    )


def check_hostile_cells(frames: dict[str, pl.DataFrame]) -> None:
    """The CSVs must exercise quoted commas, double quotes and newlines inside cells."""
    cells = [
        value
        for frame in frames.values()
        for column in frame.columns
        for value in non_null(frame, column)
    ]
    for needle in (",", '"', "\n"):
        require(any(needle in cell for cell in cells), f"no cell containing {needle!r}")
    text = (HERE / "customers.csv").read_text(encoding="utf-8")
    require('"Acme, Inc."' in text and '"The ""Best"" Widgets"' in text, "quoting not exercised")


def check(frames: dict[str, pl.DataFrame]) -> None:
    for stem, frame in frames.items():
        check_round_trip(frame, stem)
    customer_ids = set(frames["customers"]["external_id"])
    check_customers(frames["customers"])
    check_contacts(frames["contacts"], customer_ids)
    check_onboardings(frames["onboardings"], customer_ids)
    check_hostile_cells(frames)


def main() -> None:
    rng = random.Random(SEED)
    customers = build_customers(rng)
    frames = {
        "customers": to_frame(customers, CUSTOMER_COLUMNS),
        "contacts": to_frame(build_contacts(rng, customers), CONTACT_COLUMNS),
        "onboardings": to_frame(build_onboardings(rng, customers), ONBOARDING_COLUMNS),
    }
    PARQUET_DIR.mkdir(exist_ok=True)
    for stem, frame in frames.items():
        write(frame, stem)
    check(frames)
    for stem, frame in frames.items():
        print(f"{stem}: {frame.height} rows, {frame.width} columns")


if __name__ == "__main__":
    main()
