"""Exchange rates: the ECB's daily reference rates, loaded into djmoney's exchange tables.

The project ships the ECB's daily file (`ledger/data/eurofxref.csv`); a URL can be
configured instead (AGENTWALLET_FX_URL). Rates are cross-computed through EUR by djmoney
and cached per process (djmoney's cache, 10 minutes), so a decision in a foreign
currency costs no query once warm.

Each load keeps the date its rates are for (FxSnapshot.rates_date); rates older than
AGENTWALLET_FX_MAX_AGE_DAYS are stale (`fx_rates_age`), which the admin and /healthz
report. Beat loads the rates daily (ledger.tasks.load_fx_rates_task).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from djmoney.contrib.exchange.backends.base import BaseExchangeBackend
from djmoney.contrib.exchange.exceptions import MissingRate
from djmoney.contrib.exchange.models import get_rate

from ledger.models import FxSnapshot

SHIPPED_RATES = Path(__file__).resolve().parent / "data" / "eurofxref.csv"
RATE_PLACES = Decimal("0.00000001")
_DATE_CACHE_KEY = "agentwallet:fx:rates_date"


class FxError(ValueError):
    """A rates file that cannot be read."""


@dataclass(frozen=True)
class EcbRates:
    rates_date: date
    rates: dict[str, Decimal]  # units of currency per 1 EUR


def parse_ecb(raw: bytes) -> EcbRates:
    """Parse the ECB's daily CSV (or its zip, or the history CSV: first row = latest)."""
    if raw[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".csv"))
            raw = archive.read(name)
    rows = [row for row in csv.reader(io.StringIO(raw.decode("utf-8"))) if row]
    if len(rows) < 2:
        raise FxError("The rates file has no data row.")
    header = [cell.strip() for cell in rows[0]]
    values = [cell.strip() for cell in rows[1]]
    rates_date = _parse_date(values[0])
    rates = {"EUR": Decimal(1)}
    for code, value in zip(header[1:], values[1:], strict=False):
        if not code or value in ("", "N/A"):
            continue
        try:
            rates[code] = Decimal(value)
        except InvalidOperation as exc:
            raise FxError(f"Bad rate {value!r} for {code}.") from exc
    if len(rates) < 2:
        raise FxError("The rates file lists no currencies.")
    return EcbRates(rates_date=rates_date, rates=rates)


def _parse_date(text: str) -> date:
    for fmt in ("%d %B %Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 (a calendar date)
        except ValueError:
            continue
    raise FxError(f"Unrecognised date {text!r} in the rates file.")


class EcbBackend(BaseExchangeBackend):
    """djmoney backend over an ECB file or URL (base currency EUR)."""

    name = "ecb"

    def __init__(self, source: str | None = None) -> None:
        self.source = source or settings.AGENTWALLET_FX_URL or str(SHIPPED_RATES)
        self.loaded: EcbRates | None = None

    def read(self) -> EcbRates:
        if self.source.startswith(("http://", "https://")):
            with urlopen(self.source, timeout=30) as response:  # noqa: S310 (configured URL)
                raw = response.read()
        else:
            raw = Path(self.source).read_bytes()
        return parse_ecb(raw)

    def get_rates(self, **params: Any) -> dict[str, Decimal]:
        self.loaded = self.read()
        return self.loaded.rates


@transaction.atomic
def fx_rates_load(*, source: str | None = None) -> FxSnapshot:
    """Load the rates from `source` (a path or URL; default AGENTWALLET_FX_URL, else the
    file the project ships) into djmoney's tables, and record which day they are for."""
    backend = EcbBackend(source)
    backend.update_rates(base_currency="EUR")
    if backend.loaded is None:
        raise FxError("No rates were read.")
    snapshot = FxSnapshot.objects.create(
        backend=backend.name,
        base_currency="EUR",
        rates_date=backend.loaded.rates_date,
        source=backend.source,
        currencies=len(backend.loaded.rates),
    )
    transaction.on_commit(cache.clear)  # drop cached cross rates in this process
    return snapshot


@dataclass(frozen=True)
class FxQuote:
    rate: Decimal  # target units per source unit, 8 places
    rates_date: date | None


ONE = FxQuote(rate=Decimal(1), rates_date=None)


def fx_quote(source: str, target: str) -> FxQuote | None:
    """The rate to convert `source` into `target`, or None when there is none."""
    if source == target:
        return ONE
    try:
        rate = Decimal(get_rate(source, target, backend=EcbBackend.name))
    except MissingRate:
        return None
    return FxQuote(
        rate=rate.quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN), rates_date=fx_rates_date()
    )


def fx_rates_date() -> date | None:
    """The day the rates in use are for: the last load's (cached like the rates)."""
    rates_date: date | None = cache.get(_DATE_CACHE_KEY)
    if rates_date is None:
        latest = FxSnapshot.objects.filter(backend=EcbBackend.name).order_by("-id").first()
        rates_date = latest.rates_date if latest else None
        cache.set(_DATE_CACHE_KEY, rates_date, 600)
    return rates_date


# --- Staleness: one rule for the admin, /healthz and a decision's answer -------------

NO_RATES_WARNING = "No exchange rates are loaded: run `manage.py load_fx_rates`."


@dataclass(frozen=True)
class FxStaleness:
    rates_date: date
    age_days: int  # whole days from rates_date to today (UTC)
    max_age_days: int  # AGENTWALLET_FX_MAX_AGE_DAYS
    stale: bool  # age_days > max_age_days

    @property
    def warning(self) -> str:
        return (
            f"Exchange rates are from {self.rates_date}, {self.age_days} days old (limit "
            f"AGENTWALLET_FX_MAX_AGE_DAYS={self.max_age_days}), and conversions still use "
            "them: run `manage.py load_fx_rates` (Celery beat loads them daily)."
        )


def fx_rates_age(rates_date: date, *, now: datetime | None = None) -> FxStaleness:
    """How old rates of `rates_date` are at `now`, and whether that is too old."""
    today = (now or timezone.now()).astimezone(UTC).date()
    age_days = (today - rates_date).days
    max_age_days = settings.AGENTWALLET_FX_MAX_AGE_DAYS
    return FxStaleness(
        rates_date=rates_date,
        age_days=age_days,
        max_age_days=max_age_days,
        stale=age_days > max_age_days,
    )


def fx_staleness(*, now: datetime | None = None) -> FxStaleness | None:
    """The age of the rates in use, or None when no rates are loaded."""
    rates_date = fx_rates_date()
    return None if rates_date is None else fx_rates_age(rates_date, now=now)


def fx_warning(*, now: datetime | None = None) -> str | None:
    """What to tell an operator about the rates in use: None while they are fresh."""
    staleness = fx_staleness(now=now)
    if staleness is None:
        return NO_RATES_WARNING
    return staleness.warning if staleness.stale else None
