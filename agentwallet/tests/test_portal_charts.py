"""The dashboard's 30-day chart by vendor and its top traces: the SVG builder on its
own, and the figures on the page for known charges."""

from __future__ import annotations

import re
from datetime import date, timedelta

import time_machine
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentwallet.portal.charts import Series, money, nice_ceiling, stacked_bars_svg
from agentwallet.portal.selectors import DASHBOARD_PANELS
from conftest import card_for
from wallets.models import TeamLead

PASSWORD = "portal-test-password-1"
DAYS = [date(2025, 3, 1) + timedelta(days=n) for n in range(3)]


def signed_in(role: str, username: str = "someone") -> tuple[Client, User]:
    user = User.objects.create_user(username=username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client, user


# --- charts.py ----------------------------------------------------------------------


def test_money_writes_cents_as_a_decimal_figure():
    assert [money(1250), money(5), money(0), money(-105)] == ["12.50", "0.05", "0.00", "-1.05"]


def test_the_scale_rounds_up_to_one_two_or_five():
    assert [nice_ceiling(c) for c in (0, 99, 150, 1250, 30001, 50000)] == [
        100,
        100,
        200,
        2000,
        50000,
        50000,
    ]


def test_each_segment_is_stacked_with_its_figure_as_a_title():
    svg = stacked_bars_svg(
        title="Spend",
        days=DAYS,
        series=[Series("OpenAI", [1250, 0, 100]), Series("AWS", [0, 400, 0])],
        currency="USD",
    )
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.endswith("</svg>")
    assert svg.count("<rect") == 3 + 2  # three segments with spend, two legend keys
    assert "<title>2025-03-01 · OpenAI: 12.50 USD</title>" in svg
    assert "<title>2025-03-02 · AWS: 4.00 USD</title>" in svg
    assert "<title>2025-03-03 · OpenAI: 1.00 USD</title>" in svg
    assert ">20.00 USD</text>" in svg  # the top of the axis: 12.50 rounded up


def test_the_tallest_bar_fills_the_plot_and_stacks_start_at_the_axis():
    svg = stacked_bars_svg(
        title="Spend",
        days=DAYS[:1],
        series=[Series("A", [500]), Series("B", [500])],
        currency="EUR",
    )
    # Plot 170 high from y=12 to y=182; 10.00 EUR is the top: A 182..97, B 97..12.
    assert 'y="97" width="' in svg
    assert 'height="85" fill="#0072B2"' in svg
    assert 'y="12" width="' in svg
    assert 'height="85" fill="#E69F00"' in svg


def test_labels_are_escaped():
    svg = stacked_bars_svg(
        title='<script>alert("t")</script>',
        days=DAYS[:1],
        series=[Series("Ben & <Jerry>", [100])],
        currency="USD",
        chart_id='x"y',
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in svg
    assert "Ben &amp; &lt;Jerry&gt;" in svg
    assert 'id="x&quot;y-title"' in svg


def test_negative_days_draw_nothing():
    svg = stacked_bars_svg(
        title="Refunds", days=DAYS[:1], series=[Series("A", [-300])], currency="USD"
    )
    assert svg.count("<rect") == 1  # the legend key only
    assert ">1.00 USD</text>" in svg


def test_a_series_of_the_wrong_length_is_refused():
    import pytest

    with pytest.raises(ValueError, match="has 1 figures, not 3"):
        stacked_bars_svg(title="x", days=DAYS, series=[Series("A", [1])], currency="USD")


# --- the dashboard ------------------------------------------------------------------


def charge(network, card, amount: str, when: str, **extra) -> None:
    with time_machine.travel(when, tick=False):
        body = network.authorize(card, amount, **extra).json()
        assert body["decision"] == "approved", body


def spend_on_two_vendors_and_two_days(alice, bob, network) -> None:
    # Older than 30 days on the day we look: not in the chart (in the trace's total).
    charge(network, card_for(alice, "openai"), "2.00", "2025-01-15 12:00+00:00", trace_id="PR-1")
    charge(network, card_for(alice, "openai"), "12.50", "2025-03-01 10:00+00:00", trace_id="PR-1")
    charge(network, card_for(alice, "aws"), "4.00", "2025-03-02 09:00+00:00", trace_id="PR-2")
    charge(network, card_for(bob, "openai"), "1.25", "2025-03-02 23:59+00:00", trace_id="PR-1")


def dashboard(client: Client, when: str = "2025-03-02 15:00+00:00") -> str:
    """The dashboard as the browser ends up showing it: the page, then each panel it
    loads after it (its placeholder's hx-get) in the placeholder's place."""
    with time_machine.travel(when, tick=False):
        page = client.get("/").content.decode()
        for panel in DASHBOARD_PANELS:
            url = f"/dashboard/{panel}/"
            placeholder = re.compile(
                rf'<(section|article) [^>]*id="panel-{panel}" hx-get="{url}" hx-trigger="load"'
                r" hx-swap=\"outerHTML\".*?</\1>",
                re.DOTALL,
            )
            assert len(placeholder.findall(page)) == 1
            fragment = client.get(url, headers={"HX-Request": "true"})
            assert fragment.status_code == 200
            html = fragment.content.decode()
            page = placeholder.sub(lambda _, html=html: html, page)
        return page


def test_the_chart_shows_each_vendor_per_day(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, _ = signed_in("Finance")
    page = dashboard(client, "2025-03-03 08:00+00:00")
    assert 'data-testid="daily-chart-USD"' in page
    assert "<title>2025-03-01 · OpenAI: 12.50 USD</title>" in page
    assert "<title>2025-03-02 · OpenAI: 1.25 USD</title>" in page
    assert "<title>2025-03-02 · Amazon Web Services (AWS): 4.00 USD</title>" in page
    assert "2025-01-15" not in page
    assert "2025-02-02 to 2025-03-03: 17.75 USD in all" in page


def test_the_table_under_the_chart_lists_the_figures(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, _ = signed_in("Viewer")
    page = dashboard(client, "2025-03-03 08:00+00:00")
    table = page[page.index('data-testid="daily-table-USD"') :]
    table = table[: table.index("</table>")]
    cells = '<td class="num money">'
    assert (
        '<th scope="col" class="num">OpenAI</th>'
        '<th scope="col" class="num">Amazon Web Services (AWS)</th>' in table
    )
    assert f'<th scope="row">2025-03-01</th>{cells}12.50</td>{cells}0.00</td>{cells}12.50</td>' in (
        table
    )
    assert f'<th scope="row">2025-03-02</th>{cells}1.25</td>{cells}4.00</td>{cells}5.25</td>' in (
        table
    )
    assert table.count('<th scope="row">2025-') == 2  # only the days with spend
    assert f'<th scope="row">30 days</th>{cells}13.75</td>{cells}4.00</td>{cells}17.75</td>' in (
        table
    )


def test_a_lead_charts_only_the_teams_they_lead_and_their_traces(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, lead = signed_in("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=bob.agent.principal_id)
    page = dashboard(client, "2025-03-03 08:00+00:00")
    assert "<title>2025-03-02 · OpenAI: 1.25 USD</title>" in page
    assert "AWS" not in page
    assert "12.50" not in page
    traces = page[page.index('data-testid="top-traces"') :]
    assert '<code>PR-1</code></a></td><td class="num money">1.25 USD</td>' in traces
    assert "PR-2" not in traces


def test_top_traces_rank_this_months_spend(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, _ = signed_in("Finance")
    page = dashboard(client, "2025-03-03 08:00+00:00")
    panel = page[page.index('data-testid="top-traces"') :]
    first, second = panel.index("<code>PR-1</code>"), panel.index("<code>PR-2</code>")
    assert first < second
    # January's 2.00 on PR-1 is another month's.
    assert '<code>PR-1</code></a></td><td class="num money">13.75 USD</td>' in panel
    assert '<code>PR-2</code></a></td><td class="num money">4.00 USD</td>' in panel
    assert 'href="/traces/PR-1/"' in panel


def test_spend_by_vendor_this_month_against_the_policies_vendor_caps(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, _ = signed_in("Finance")
    page = dashboard(client, "2025-03-03 08:00+00:00")
    panel = page[page.index('data-testid="vendor-spend"') :]
    # OpenAI: 12.50 + 1.25 against two agents' $2,000 starter vendor caps.
    assert '<td>OpenAI</td>\n        <td class="num money">13.75 USD</td>' in panel
    assert 'aria-label="0% of 4000.00 USD"' in panel
    assert '<td class="num money">4000.00 USD</td>' in panel
    assert "<td>Amazon Web Services (AWS)</td>" in panel
    assert panel.index("OpenAI") < panel.index("Amazon Web Services")


def test_a_new_month_starts_at_zero_before_its_first_charge(alice, bob, network):
    charge(network, card_for(alice, "openai"), "30.00", "2025-02-27 10:00+00:00")
    client, _ = signed_in("Finance")
    february = dashboard(client, "2025-02-28 10:00+00:00")
    assert 'data-testid="month-spent-USD">30.00' in february
    march = dashboard(client, "2025-03-01 10:00+00:00")
    assert 'data-testid="month-spent-USD">0.00' in march
    assert "No vendor spend this month." in march


def test_with_no_spend_the_chart_and_traces_say_so(alice):
    client, _ = signed_in("Finance")
    page = dashboard(client)
    assert 'data-testid="daily-empty">No spend in the last 30 days.' in page
    assert "<svg" not in page
    assert "No spend on a trace this month." in page


def test_the_chart_costs_the_same_queries_whatever_the_vendors_days_and_traces(alice, bob, network):
    client, _ = signed_in("Finance")

    def queries() -> int:
        with (
            time_machine.travel("2025-03-20 12:00+00:00", tick=False),
            CaptureQueriesContext(connection) as captured,
        ):
            for url in ["/", *(f"/dashboard/{panel}/" for panel in DASHBOARD_PANELS)]:
                assert client.get(url).status_code == 200
        return len(captured)

    charge(network, card_for(alice, "openai"), "1.00", "2025-03-09 09:00+00:00", trace_id="T-0")
    few = queries()
    for n, vendor in enumerate(("aws", "github", "openai")):
        for agent in (alice, bob):
            when = f"2025-03-{10 + n:02d} 09:00+00:00"
            charge(network, card_for(agent, vendor), "1.00", when, trace_id=f"T-{n}")
    assert queries() == few


def test_each_panel_is_a_page_of_its_own_without_javascript(alice, bob, network):
    spend_on_two_vendors_and_two_days(alice, bob, network)
    client, _ = signed_in("Finance")
    with time_machine.travel("2025-03-03 08:00+00:00", tick=False):
        page = client.get("/").content.decode()
        assert page.count('data-testid="panel-loading"') == len(DASHBOARD_PANELS)
        assert '<a href="/dashboard/daily/">Open this panel on its own page</a>' in page
        whole = client.get("/dashboard/daily/")
        fragment = client.get("/dashboard/daily/", headers={"HX-Request": "true"})
    assert whole.status_code == fragment.status_code == 200
    assert "<title>Dashboard" in whole.content.decode()
    assert "<title>" not in fragment.content.decode().split("<svg")[0]
    assert 'data-testid="daily-chart-USD"' in whole.content.decode()
    assert "HX-Request" in fragment["Vary"]
    assert client.get("/dashboard/nothing/").status_code == 404
    assert Client().get("/dashboard/daily/")["Location"] == (
        "/accounts/login/?next=/dashboard/daily/"
    )
