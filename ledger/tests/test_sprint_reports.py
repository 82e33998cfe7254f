"""Sprint reports (ledger.services.reports) on a ledger whose figures are known: built,
rebuilt in place, posted once when the sprint has ended, shown and downloaded in the
portal, built by the command and by beat."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from agentwallet.tests.test_portal import signed_in, user_with
from approvals.models import CapBump, OutboxMessage
from conftest import card_for
from ledger.models import Runaway, SprintCalendar, SprintReport
from ledger.services.reports import sprint_report_build, sprint_reports_due
from wallets.models import TeamLead

FIRST = date(2026, 11, 2)  # a Monday
IN_SPRINT = datetime(2026, 11, 4, 10, tzinfo=UTC)
AFTER = datetime(2026, 11, 16, 0, 5, tzinfo=UTC)


def at(network, when, card, amount, **extra):
    with time_machine.travel(when, tick=False):
        return network.authorize(card, amount, **extra).json()


@pytest.fixture
def sprint(alice, bob, network, staff_client):
    SprintCalendar.objects.update_or_create(
        pk=1, defaults={"first_day": FIRST, "length_days": 14, "time_zone": "UTC"}
    )
    first = at(network, IN_SPRINT, card_for(alice, "openai"), "10.00", trace_id="owner/repo#1")
    with time_machine.travel(IN_SPRINT + timedelta(minutes=5), tick=False):
        assert network.capture(first["id"], "10.00").status_code == 201
    at(network, IN_SPRINT, card_for(alice, "aws"), "18.00", trace_id="owner/repo#2")
    at(network, IN_SPRINT, card_for(bob, "aws"), "5.00")
    declined = at(
        network,
        IN_SPRINT + timedelta(hours=1),
        card_for(bob, "openai"),
        "20.00",
        trace_id="owner/repo#1",
    )
    assert declined["reason"] == "trace_cap_exceeded"  # the starter's $20 per trace
    with time_machine.travel(IN_SPRINT + timedelta(hours=2), tick=False):
        approved = staff_client.post(
            f"/api/approvals/{declined['approval_id']}/approve", {}, format="json"
        )
    assert approved.status_code == 200, approved.content
    at(network, datetime(2026, 11, 20, tzinfo=UTC), card_for(alice, "aws"), "7.00")  # after
    Runaway.objects.create(
        subject="trace",
        subject_key="trace:USD:owner/repo#2",
        trace_id="owner/repo#2",
        currency="USD",
        hour_start=IN_SPRINT.replace(minute=0),
        rate_cents=3000,
        baseline_cents=0,
        detected_at=IN_SPRINT,
    )
    return {"alice": alice, "bob": bob}


def test_the_report_has_the_sprints_exact_figures(sprint):
    report = sprint_report_build(first_day=FIRST, now=AFTER)
    figures = report.figures
    assert figures["complete"] is True
    usd = figures["currencies"]["USD"]
    assert usd["spent"] == {"amount": "33.00", "currency": "USD"}
    assert usd["unattributed"] == {"amount": "5.00", "currency": "USD"}
    assert usd["traces"] == 2
    assert [t["trace_id"] for t in usd["top_traces"]] == ["owner/repo#2", "owner/repo#1"]
    assert usd["concentration"] == {"top_traces": 1, "share_percent": "54.5"}  # 18 of 33
    assert {(r["trace_id"], r["vendor"], r["spent"]["amount"]) for r in usd["by_trace_vendor"]} == {
        ("owner/repo#1", "openai", "10.00"),
        ("owner/repo#2", "aws", "18.00"),
        ("", "aws", "5.00"),
    }
    assert [(r["agent"], r["spent"]["amount"]) for r in usd["by_agent"]] == [
        ("alice-agent", "28.00"),
        ("bob-agent", "5.00"),
    ]
    assert figures["declines"] == {"trace_cap_exceeded": 1}
    bump = CapBump.objects.get()
    assert figures["approvals"] == {
        "asked": 1,
        "granted": 1,
        "bumped": [{"amount": str(bump.amount.amount), "currency": "USD"}],
    }
    assert [r["trace_id"] for r in figures["runaways"]] == ["owner/repo#2"]
    assert (report.starts_at, report.ends_at) == (
        datetime(2026, 11, 2, tzinfo=UTC),
        datetime(2026, 11, 16, tzinfo=UTC),
    )


def test_a_rebuild_replaces_the_figures_in_place_and_slack_hears_once(sprint, network):
    so_far = sprint_report_build(first_day=FIRST, now=IN_SPRINT + timedelta(days=1))
    assert so_far.figures["complete"] is False
    assert not OutboxMessage.objects.filter(kind="sprint_report").exists()
    at(network, IN_SPRINT + timedelta(days=2), card_for(sprint["alice"], "aws"), "1.50")
    report = sprint_report_build(first_day=FIRST, now=AFTER)
    again = sprint_report_build(first_day=FIRST, now=AFTER + timedelta(hours=1))
    assert report.pk == so_far.pk == again.pk
    assert SprintReport.objects.count() == 1
    assert again.figures["currencies"]["USD"]["spent"]["amount"] == "34.50"
    [message] = OutboxMessage.objects.filter(kind="sprint_report")
    assert message.payload["url"].endswith(f"/reports/{report.pk}/")
    assert message.payload["currencies"]["USD"]["spent"]["amount"] == "34.50"


def test_beat_builds_the_last_sprint_once_it_has_ended(sprint, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sprint-reports-due"]
    assert entry["task"] == "ledger.tasks.sprint_reports_due_task"
    assert sprint_reports_due(now=IN_SPRINT) is None  # no sprint has ended yet
    report = sprint_reports_due(now=AFTER)
    assert report.first_day == FIRST
    assert sprint_reports_due(now=AFTER + timedelta(minutes=15)) is None
    assert SprintReport.objects.count() == 1


def test_the_command_builds_a_days_sprint(sprint, capsys):
    with time_machine.travel(AFTER, tick=False):
        call_command("sprint_report", "--last")
    out = capsys.readouterr().out
    assert "sprint of 2026-11-02 (complete)" in out
    assert "33.00 USD spent, 54.5% by the top 1 trace(s), 5.00 USD on no trace" in out
    with pytest.raises(Exception, match="not a YYYY-MM-DD"):
        call_command("sprint_report", "--day", "someday")


def test_the_portal_lists_shows_and_downloads_a_report(sprint):
    report = sprint_report_build(first_day=FIRST, now=AFTER)
    finance = signed_in(user_with("Finance"))
    listing = finance.get("/reports/").content.decode()
    assert f'href="/reports/{report.pk}/">2026-11-02 to 2026-11-15</a>' in listing
    page = finance.get(f"/reports/{report.pk}/").content.decode()
    assert 'data-testid="spent-USD">33.00' in page
    assert 'data-testid="concentration-USD">54.5%' in page
    assert 'data-testid="unattributed-USD">5.00' in page
    assert "trace_cap_exceeded" in page
    assert "1 asked, 1 granted" in page
    download = finance.get(f"/reports/{report.pk}/report.csv")
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert {(r["trace_id"], r["vendor"], r["spent"]) for r in rows} == {
        ("owner/repo#1", "openai", "10.00"),
        ("owner/repo#2", "aws", "18.00"),
        ("", "aws", "5.00"),
    }
    assert sum(Decimal(r["spent"]) for r in rows) == Decimal("33.00")


def test_finance_builds_on_demand_viewers_and_leads_may_not(sprint):
    finance = signed_in(user_with("Finance"))
    with time_machine.travel(IN_SPRINT + timedelta(days=1), tick=False):
        built = finance.post("/reports/", {"first_day": "2026-11-05"})
    report = SprintReport.objects.get()
    assert built.status_code == 302
    assert built["Location"] == f"/reports/{report.pk}/"
    assert report.figures["complete"] is False
    assert finance.post("/reports/", {"first_day": "someday"}).status_code == 400
    viewer = signed_in(user_with("Viewer", "vera"))
    assert viewer.post("/reports/", {}).status_code == 403
    assert viewer.get(f"/reports/{report.pk}/").status_code == 200
    lead_user = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead_user, principal_id=sprint["alice"].agent.principal_id)
    lead = signed_in(lead_user)
    assert "cover the whole organisation" in lead.get("/reports/").content.decode()
    assert lead.get(f"/reports/{report.pk}/").status_code == 404
    assert lead.get(f"/reports/{report.pk}/report.csv").status_code == 404
    assert lead.post("/reports/", {}).status_code == 403


def test_any_day_of_a_sprint_names_that_sprint(sprint):
    report = sprint_report_build(first_day=date(2026, 11, 15), now=AFTER)  # its last day
    assert report.first_day == FIRST
    assert sprint_report_build(first_day=FIRST, now=AFTER).pk == report.pk
