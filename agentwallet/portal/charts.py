"""Server-side SVG charts for the portal: data in, markup out (no JavaScript, no network).

Every piece of text that reaches the markup goes through `html.escape`, so the result
may be marked safe in a template. Amounts are integer cents; a chart draws negative
figures (a day of refunds) as nothing and leaves the exact figure to the table shown
with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape

from agentwallet.lib.money import from_cents

# Okabe-Ito: told apart by people with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999")

WIDTH = 720
HEIGHT = 260
LEFT = 92  # room for the y-axis labels ("10000.00 USD")
RIGHT = 8
TOP = 12
PLOT_HEIGHT = 170
LEGEND_Y = TOP + PLOT_HEIGHT + 48
TICKS = 4


@dataclass(frozen=True)
class Series:
    """One stacked layer: a label and its cents for each day, in the chart's day order."""

    label: str
    cents: Sequence[int]


def money(cents: int) -> str:
    """Cents as a plain decimal figure, e.g. 1250 -> "12.50", -5 -> "-0.05"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def nice_ceiling(cents: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten (in whole units) at least `cents`."""
    if cents <= 0:
        return 100
    step = 100
    while True:
        for factor in (1, 2, 5):
            if step * factor >= cents:
                return step * factor
        step *= 10


def _f(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def stacked_bars_svg(
    *,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    currency: str,
    chart_id: str = "chart",
) -> str:
    """A bar per day, its series stacked bottom to top in the order given, with a y axis
    in `currency`, day labels every week and a legend. Each segment carries a `<title>`
    (a tooltip, and what a screen reader reads when it enters the image). `chart_id`
    keeps the title's id unique when a page shows several charts."""
    for layer in series:
        if len(layer.cents) != len(days):
            raise ValueError(
                f"series {layer.label!r} has {len(layer.cents)} figures, not {len(days)}"
            )
    totals = [sum(max(layer.cents[i], 0) for layer in series) for i in range(len(days))]
    top = nice_ceiling(max(totals, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.72, 1.0)
    base = TOP + PLOT_HEIGHT

    def y(cents: int) -> float:
        return base - PLOT_HEIGHT * cents / top

    cur = escape(currency)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    for tick in range(TICKS + 1):
        cents = top * tick // TICKS
        ty = _f(y(cents))
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty}" y2="{ty}" '
            'stroke="#d0d4da" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{ty}" text-anchor="end" '
            f'dominant-baseline="middle" font-size="11">{money(cents)} {cur}</text>'
        )
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        stacked = 0
        for index, layer in enumerate(series):
            cents = layer.cents[i]
            if cents <= 0:
                continue
            label = f"{day.isoformat()} · {layer.label}: {money(cents)} {currency}"
            parts.append(
                f'<rect x="{_f(x)}" y="{_f(y(stacked + cents))}" width="{_f(bar)}" '
                f'height="{_f(y(stacked) - y(stacked + cents))}" '
                f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(label)}</title></rect>'
            )
            stacked += cents
        if (len(days) - 1 - i) % 7 == 0:  # the last day, and every week before it
            parts.append(
                f'<text class="day" x="{_f(x + bar / 2)}" y="{base + 16}" text-anchor="middle" '
                f'font-size="11">{day:%m-%d}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="#5b6470"/>'
    )
    x = float(LEFT)
    for index, layer in enumerate(series):
        name = escape(layer.label)
        parts.append(
            f'<rect x="{_f(x)}" y="{LEGEND_Y - 10}" width="12" height="12" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{_f(x + 16)}" y="{LEGEND_Y}" font-size="12">{name}</text>'
        )
        x += 16 + 7.5 * len(layer.label) + 18
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class DayRow:
    """One day of a chart's table: cents per layer (vendor), signed (refunds negative)."""

    day: date
    cents: list[int]

    @property
    def figures(self) -> list[Decimal]:
        return [from_cents(cents) for cents in self.cents]

    @property
    def total(self) -> Decimal:
        return from_cents(sum(self.cents))


def layer_totals(rows: Sequence[DayRow], layers: Sequence[str]) -> list[Decimal]:
    """Each layer's sum over the days, for the table's last row."""
    return [from_cents(sum(row.cents[i] for row in rows)) for i in range(len(layers))]


def day_rows_svg(
    *,
    title: str,
    days: Sequence[date],
    layers: Sequence[str],
    rows: Sequence[DayRow],
    currency: str,
    chart_id: str,
) -> str:
    """The stacked chart of a table of day rows (one layer per column)."""
    return stacked_bars_svg(
        title=title,
        days=days,
        series=[
            Series(label=layer, cents=[row.cents[i] for row in rows])
            for i, layer in enumerate(layers)
        ],
        currency=currency,
        chart_id=chart_id,
    )
