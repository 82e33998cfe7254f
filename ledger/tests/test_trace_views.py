"""The portal's trace pages: /traces/ (traces by spend this month, for the user's scope)
and /traces/<trace_id>/ (spend by vendor, agent and day, the caps, the entries)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agentwallet.tests.test_portal import signed_in, user_with
from approvals.models import ApprovalRequest
from approvals.services import approval_grant
from conftest import card_for
from wallets.models import TeamLead


def approved(response) -> None:
    assert response.json()["decision"] == "approved", response.json()


@pytest.fixture
def traced(alice, bob, network):
    """PR-1: alice 12.50 on OpenAI and 2.00 on Anthropic, bob 3.00 on OpenAI (17.50 of
    the starter policy's 20.00 per-trace cap); PR-BOB: bob alone, 4.00."""
    approved(network.authorize(card_for(alice, "openai"), "12.50", trace_id="PR-1"))
    approved(network.authorize(card_for(alice, "anthropic"), "2.00", trace_id="PR-1"))
    approved(network.authorize(card_for(bob, "openai"), "3.00", trace_id="PR-1"))
    approved(network.authorize(card_for(bob, "github"), "4.00", trace_id="PR-BOB"))
    return alice, bob


def lead_of(provisioned):
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=provisioned.agent.principal_id)
    return signed_in(lead)


def row_of(page: str, trace_id: str) -> str:
    start = page.index(f"<code>{trace_id}</code>")
    return page[start : page.index("</tr>", start)]


# --- /traces/ -----------------------------------------------------------------------


def test_the_list_shows_traces_by_spend_this_month_with_caps(traced):
    page = signed_in(user_with("Finance")).get("/traces/").content.decode()
    assert "<h1>Traces</h1>" in page
    assert page.index("<code>PR-1</code>") < page.index("<code>PR-BOB</code>")
    first = row_of(page, "PR-1")
    assert "17.50 USD" in first  # spent this month
    assert "20.00 USD" in first  # the starter policy's per-trace cap
    assert "2.50 USD" in first  # remaining
    assert "alice-agent, bob-agent" in first
    assert "Anthropic, OpenAI" in first
    assert "4.00 USD" in row_of(page, "PR-BOB")
    assert "16.00 USD" in row_of(page, "PR-BOB")
    assert "2 traces this month" in page
    assert 'href="/traces/PR-1/"' in page


def test_the_search_finds_traces_by_prefix_and_htmx_gets_the_rows_only(traced):
    client = signed_in(user_with("Viewer"))
    page = client.get("/traces/?q=PR-B").content.decode()
    assert "<code>PR-BOB</code>" in page
    assert "<code>PR-1</code>" not in page
    fragment = client.get("/traces/?q=PR-1", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert "<html" not in body
    assert 'data-testid="trace-table"' in body
    assert "<code>PR-1</code>" in body
    assert "<code>PR-BOB</code>" not in body
    assert "HX-Request" in fragment["Vary"]
    assert (
        "No trace starting with <code>nope</code>" in client.get("/traces/?q=nope").content.decode()
    )


def test_an_htmx_history_restore_gets_the_whole_page(traced):
    client = signed_in(user_with("Viewer"))
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    assert "<html" in client.get("/traces/?q=PR", headers=headers).content.decode()
    assert "<html" in client.get("/traces/PR-1/", headers=headers).content.decode()


def test_the_month_is_this_utc_month(alice, network):
    with time_machine.travel("2026-10-31 23:30+00:00"):
        approved(network.authorize(card_for(alice, "openai"), "5.00", trace_id="PR-OLD"))
    with time_machine.travel("2026-11-01 00:30+00:00"):
        approved(network.authorize(card_for(alice, "openai"), "1.25", trace_id="PR-OLD"))
        approved(network.authorize(card_for(alice, "openai"), "0.50", trace_id="PR-NEW"))
        client = signed_in(user_with("Finance"))
        page = client.get("/traces/").content.decode()
        detail = client.get("/traces/PR-OLD/").content.decode()
    old = row_of(page, "PR-OLD")
    assert "1.25 USD" in old  # October's 5.00 is last month
    assert "13.75 USD" in old  # but the cap counts the trace's whole life: 20 - 6.25
    assert 'data-testid="trace-spent-USD">6.25' in detail


def test_a_lead_sees_only_their_teams_spend_on_traces(traced):
    alice, _ = traced
    page = lead_of(alice).get("/traces/").content.decode()
    assert "<code>PR-BOB</code>" not in page
    first = row_of(page, "PR-1")
    assert "14.50 USD" in first  # alice's part only
    assert "2.50 USD" in first  # the trace's budget is shared: bob's spend counts
    assert "bob-agent" not in first


def test_the_list_pages_with_flat_queries(alice, network):
    client = signed_in(user_with("Finance"))
    card = card_for(alice, "openai")

    def queries(url: str = "/traces/") -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured), response.content.decode()

    approved(network.authorize(card, "0.30", trace_id="T-0"))
    one, _ = queries()
    for n in range(1, 30):
        approved(network.authorize(card, "0.01", trace_id=f"T-{n}"))
    many, page = queries()
    assert many == one
    assert page.count("<tr>") == 1 + 25  # the header and a page of traces
    assert "Page 1 of 2 · 30 traces this month" in page
    assert 'href="?q=&page=2"' in page
    second, rest = queries("/traces/?page=2")
    assert second == one
    assert rest.count("<tr>") == 1 + 5


def test_anonymous_users_are_sent_to_sign_in_and_roleless_ones_refused(traced, client):
    assert client.get("/traces/")["Location"].startswith("/accounts/login/")
    assert client.get("/traces/PR-1/")["Location"].startswith("/accounts/login/")
    roleless = signed_in(user_with(None))
    assert roleless.get("/traces/").status_code == 403
    assert roleless.get("/traces/PR-1/").status_code == 403


def test_the_nav_links_the_traces_page(traced):
    page = signed_in(user_with("Viewer")).get("/traces/").content.decode()
    assert '<a href="/traces/" aria-current="page">Traces</a>' in page


# --- /traces/<trace_id>/ ------------------------------------------------------------


def test_the_trace_page_shows_spend_by_vendor_agent_and_day(traced):
    page = signed_in(user_with("Finance")).get("/traces/PR-1/").content.decode()
    assert "<h1>Trace <code>PR-1</code></h1>" in page
    assert 'data-testid="trace-spent-USD">17.50' in page
    vendors = page[page.index('data-testid="trace-vendors-USD"') :]
    vendors = vendors[: vendors.index("</table>")]
    assert vendors.index("OpenAI") < vendors.index("Anthropic")
    assert "15.50 USD" in vendors
    assert 'aria-label="89% of the trace' in vendors  # 15.50 of 17.50
    agents = page[page.index('data-testid="trace-agents-USD"') :]
    agents = agents[: agents.index("</table>")]
    assert agents.index("alice-agent") < agents.index("bob-agent")
    assert "14.50 USD" in agents
    chart = page[page.index('data-testid="trace-chart-USD"') :]
    assert "<svg" in chart[: chart.index("</figure>")]
    days = page[page.index('data-testid="trace-days-USD"') :]
    days = days[: days.index("</table>")]
    assert days.count('<th scope="row">') == 2  # today and the total
    assert "17.50" in days
    entries = page[page.index('data-testid="trace-entries"') :]
    assert entries[: entries.index("</table>")].count("<tr>") == 1 + 3
    assert 'href="/ledger/?trace_id=PR-1"' in page


def test_the_cap_and_remaining_are_the_apis(traced, network, staff_client):
    alice, bob = traced
    declined = network.authorize(card_for(alice, "openai"), "5.00", trace_id="PR-1").json()
    assert declined["reason"] == "trace_cap_exceeded"
    approval_grant(
        request=ApprovalRequest.objects.get(pk=declined["approval_id"]),
        actor_label="finance",
        amount=1,
    )
    page = signed_in(user_with("Finance")).get("/traces/PR-1/").content.decode()
    api_trace = staff_client.get("/api/traces/PR-1").json()
    assert f'data-testid="trace-spent-USD">{api_trace["spent"]["amount"]}' in page
    for provisioned in (alice, bob):
        budget = staff_client.get(f"/api/agents/{provisioned.agent.pk}/budget").json()
        (figure,) = [trace for trace in budget["traces"] if trace["trace_id"] == "PR-1"]
        row = page[page.index(f'data-testid="trace-cap-{provisioned.agent.name}"') :]
        row = row[: row.index("</tr>")]
        cells = [cell.split("</td>")[0] for cell in row.split("<td")[1:]]
        cap, bump, spent, remaining = (cells[i].split(">", 1)[1] for i in (2, 3, 4, 5))
        assert cap == f"{figure['cap']['amount']} USD"
        assert spent == f"{figure['spent']['amount']} USD"
        assert remaining == f"{figure['remaining']['amount']} USD"
        assert bump == (f"{figure['bump']['amount']} USD" if figure["bump"] else "—")
    # The bump is alice's only: her remaining differs from bob's, so no single figure.
    assert "Each agent's policy gives its own" in page


def test_a_trace_with_one_agents_cap_shows_it_as_the_headline(traced):
    page = signed_in(user_with("Finance")).get("/traces/PR-BOB/").content.decode()
    assert 'data-testid="trace-remaining">16.00' in page


def test_a_lead_gets_404_for_a_trace_only_another_team_spent_on(traced):
    alice, _ = traced
    client = lead_of(alice)
    assert client.get("/traces/PR-BOB/").status_code == 404
    assert client.get("/traces/PR-BOB/", headers={"HX-Request": "true"}).status_code == 404
    shared = client.get("/traces/PR-1/").content.decode()
    assert 'data-testid="trace-spent-USD">14.50' in shared
    assert "bob-agent" not in shared


def test_an_unknown_trace_answers_404(traced):
    client = signed_in(user_with("Finance"))
    assert client.get("/traces/PR-404/").status_code == 404
    assert client.get("/traces/not%20a%20trace/").status_code == 404


def test_trace_ids_with_slashes_and_hashes_are_linked_encoded(alice, network):
    trace_id = "team/PR#12@main+1"
    approved(network.authorize(card_for(alice, "openai"), "1.00", trace_id=trace_id))
    client = signed_in(user_with("Finance"))
    href = f"/traces/{quote(trace_id, safe='')}/"
    assert href == "/traces/team%2FPR%2312%40main%2B1/"
    assert f'href="{href}"' in client.get("/traces/").content.decode()
    page = client.get(href).content.decode()
    assert "<h1>Trace <code>team/PR#12@main+1</code></h1>" in page
    assert f'href="/ledger/?trace_id={quote(trace_id, safe="")}"' in page
    assert client.get(reverse("portal-trace", args=[trace_id])).status_code == 200
    ledger = client.get(f"/ledger/?trace_id={quote(trace_id, safe='')}").content.decode()
    assert "1.00 USD</strong> net over 1 entry" in ledger


def test_the_entries_go_back_by_keyset_and_htmx_gets_them_only(alice, network):
    card = card_for(alice, "openai")
    for n in range(55):
        approved(network.authorize(card, "0.01", trace_id="PR-LONG", network_id=f"n{n}"))
    client = signed_in(user_with("Viewer"))
    page = client.get("/traces/PR-LONG/").content.decode()
    assert "Older entries" in page
    assert "Newest entries" not in page
    before = page.split("?before=")[1].split('"')[0]
    older = client.get(f"/traces/PR-LONG/?before={before}", headers={"HX-Request": "true"})
    body = older.content.decode()
    assert "<html" not in body
    assert "Spend per day" not in body
    assert body.count("<tr>") == 1 + 5
    assert "Older entries" not in body
    assert 'hx-get="/traces/PR-LONG/"' in body  # back to the newest
    assert 'hx-push-url="true"' in body
    full = client.get(f"/traces/PR-LONG/?before={before}").content.decode()
    assert "<html" in full
    assert "Newest entries" in full
    junk = client.get("/traces/PR-LONG/?before=%C2%B2").content.decode()  # "²" is a digit
    assert "Older entries" in junk


def test_the_trace_page_queries_stay_flat(alice, bob, network):
    client = signed_in(user_with("Finance"))

    def queries(trace_id: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/traces/{trace_id}/").status_code == 200
        return len(captured)

    approved(network.authorize(card_for(alice, "openai"), "0.10", trace_id="PR-SMALL"))
    few = queries("PR-SMALL")
    for provisioned in (alice, bob):
        for vendor in ("openai", "anthropic", "github"):
            for _ in range(3):
                card = card_for(provisioned, vendor)
                approved(network.authorize(card, "0.10", trace_id="PR-BIG"))
    assert queries("PR-BIG") == few


def test_the_ledger_ignores_a_before_that_is_not_an_entry_id(traced):
    client = signed_in(user_with("Finance"))
    for junk in ("%C2%B2", "9" * 30, "-1"):  # "²" is a digit to str.isdigit
        page = client.get(f"/ledger/?before={junk}")
        assert page.status_code == 200
        assert "21.50 USD</strong> net over 4 entries" in page.content.decode()
