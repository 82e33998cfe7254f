"""Stale exchange rates are said out loud: one rule (ledger.fx.fx_rates_age) for the
admin, /healthz, the loader; and beat loads the rates daily."""

from __future__ import annotations

import logging
from datetime import date, datetime

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command

from ledger import fx
from ledger.fx import NO_RATES_WARNING, fx_rates_age, fx_rates_load, fx_staleness, fx_warning
from ledger.models import FxSnapshot
from ledger.tasks import load_fx_rates_task

SHIPPED_DATE = date(2026, 10, 30)  # ledger/data/eurofxref.csv, a Friday


def rates_file(tmp_path, day: str) -> str:
    path = tmp_path / f"rates-{day.replace(' ', '-')}.csv"
    path.write_text(f"Date, USD, JPY, \n{day}, 1.0500, 160.00, \n")
    return str(path)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- The rule ----------------------------------------------------------------------


def test_fridays_rates_are_fresh_through_tuesday_and_stale_on_wednesday():
    friday = date(2026, 11, 27)
    assert fx_rates_age(friday, now=at("2026-11-30 09:00+00:00")).stale is False  # Monday
    tuesday = fx_rates_age(friday, now=at("2026-12-01 23:59+00:00"))
    assert (tuesday.age_days, tuesday.stale) == (4, False)
    wednesday = fx_rates_age(friday, now=at("2026-12-02 00:00+00:00"))
    assert (wednesday.age_days, wednesday.stale) == (5, True)


def test_the_age_counts_utc_days():
    # 23:30 in New York on the 1st is already the 2nd in UTC.
    age = fx_rates_age(date(2026, 11, 27), now=at("2026-12-01 23:30-05:00"))
    assert age.age_days == 5


def test_the_limit_is_a_setting(settings):
    settings.AGENTWALLET_FX_MAX_AGE_DAYS = 1
    age = fx_rates_age(date(2026, 11, 27), now=at("2026-11-29 12:00+00:00"))
    assert (age.age_days, age.max_age_days, age.stale) == (2, 1, True)
    assert "AGENTWALLET_FX_MAX_AGE_DAYS=1" in age.warning


def test_the_warning_names_the_date_the_age_and_the_fix():
    warning = fx_rates_age(SHIPPED_DATE, now=at("2026-12-01 12:00+00:00")).warning
    assert "2026-10-30" in warning
    assert "32 days old" in warning
    assert "load_fx_rates" in warning


# --- The rates in use ---------------------------------------------------------------


def test_no_rates_loaded_is_none_and_a_warning(db):
    assert fx_staleness() is None
    assert fx_warning() == NO_RATES_WARNING


def test_the_age_is_that_of_the_last_load(db, tmp_path):
    fx_rates_load(source=rates_file(tmp_path, "27 November 2026"))
    fx_rates_load()  # then the shipped, older file: its rates are the ones in use
    cache.clear()  # what the load's on_commit does once its transaction commits
    staleness = fx_staleness(now=at("2026-12-01 12:00+00:00"))
    assert staleness is not None
    assert (staleness.rates_date, staleness.age_days, staleness.stale) == (SHIPPED_DATE, 32, True)


def test_fresh_rates_need_no_warning(fx_rates):
    assert fx_warning(now=at("2026-11-02 12:00+00:00")) is None
    assert "32 days old" in (fx_warning(now=at("2026-12-01 12:00+00:00")) or "")


def test_decisions_and_staleness_read_the_same_date(fx_rates):
    quote = fx.fx_quote("USD", "EUR")
    staleness = fx_staleness()
    assert quote is not None
    assert staleness is not None
    assert quote.rates_date == staleness.rates_date == SHIPPED_DATE


# --- /healthz -------------------------------------------------------------------------


@time_machine.travel("2026-12-01 12:00+00:00", tick=False)
def test_healthz_reports_stale_rates_and_stays_200(fx_rates, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["fx"] == {
        "rates_date": "2026-10-30",
        "age_days": 32,
        "max_age_days": 4,
        "stale": True,
    }
    assert len(body["warnings"]) == 1
    assert "32 days old" in body["warnings"][0]


@time_machine.travel("2026-11-02 12:00+00:00", tick=False)
def test_healthz_has_no_warning_while_the_rates_are_fresh(fx_rates, client):
    body = client.get("/healthz").json()
    assert body["fx"]["stale"] is False
    assert body["fx"]["age_days"] == 3
    assert body["warnings"] == []


def test_healthz_says_when_no_rates_are_loaded(db, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["fx"] is None
    assert response.json()["warnings"] == [NO_RATES_WARNING]


def test_healthz_stays_200_when_the_rates_cannot_be_read(db, client, monkeypatch):
    from django.db import DatabaseError

    from agentwallet import views

    def unreadable(**kwargs):
        raise DatabaseError('relation "ledger_fxsnapshot" does not exist')

    monkeypatch.setattr(views, "fx_staleness", unreadable)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["fx"] is None
    assert "could not be read" in response.json()["warnings"][0]


# --- The admin ------------------------------------------------------------------------


@time_machine.travel("2026-12-01 12:00+00:00", tick=False)
@pytest.mark.parametrize("path", ["/admin/", "/admin/ledger/fxsnapshot/"])
def test_the_admin_warns_about_stale_rates(fx_rates, admin_client, path):
    page = admin_client.get(path).content.decode()
    assert "Exchange rates are from 2026-10-30, 32 days old" in page


@time_machine.travel("2026-11-02 12:00+00:00", tick=False)
def test_the_admin_index_is_quiet_while_the_rates_are_fresh(fx_rates, admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "Exchange rates" not in page
    assert "AgentWallet" in page  # the site's own header


def test_the_admin_index_says_when_no_rates_are_loaded(db, admin_client):
    assert "No exchange rates are loaded" in admin_client.get("/admin/").content.decode()


# --- Loading: the command and beat's task --------------------------------------------


@time_machine.travel("2026-12-01 12:00+00:00", tick=False)
def test_the_command_warns_when_it_loads_stale_rates(db, capsys):
    call_command("load_fx_rates")
    captured = capsys.readouterr()
    assert "loaded" in captured.out
    assert "32 days old" in captured.err


@time_machine.travel("2026-11-30 16:00+00:00", tick=False)
def test_the_command_is_quiet_about_fresh_rates(db, tmp_path, capsys):
    call_command("load_fx_rates", "--source", rates_file(tmp_path, "30 November 2026"))
    assert capsys.readouterr().err == ""


def test_beat_loads_the_rates_daily(settings):
    from celery.schedules import crontab

    from agentwallet.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["load-fx-rates"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] == crontab(hour=15, minute=30)


def test_the_task_loads_from_the_configured_source(db, settings, tmp_path):
    settings.AGENTWALLET_FX_URL = rates_file(tmp_path, "27 November 2026")
    result = load_fx_rates_task.apply()
    assert result.get() == "3 rates for 2026-11-27"
    assert FxSnapshot.objects.get().source == settings.AGENTWALLET_FX_URL


@time_machine.travel("2026-12-01 12:00+00:00", tick=False)
def test_the_task_warns_when_the_source_serves_stale_rates(db, caplog):
    with caplog.at_level(logging.WARNING, logger="ledger.tasks"):
        load_fx_rates_task.apply().get()
    assert "32 days old" in caplog.text


def counting(monkeypatch, exc: Exception) -> list[dict]:
    """Make the task's loader fail with `exc`, counting the attempts; eager retries run
    inline once failures are not propagated."""
    from agentwallet.celery import app

    calls: list[dict] = []

    def failing(**kwargs):
        calls.append(kwargs)
        raise exc

    monkeypatch.setattr("ledger.tasks.fx_rates_load", failing)
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    return calls


def test_the_task_tries_an_unreachable_source_again(db, monkeypatch):
    calls = counting(monkeypatch, OSError("connection refused"))
    result = load_fx_rates_task.apply()
    assert result.failed()
    assert isinstance(result.result, OSError)
    assert len(calls) == 1 + load_fx_rates_task.max_retries


def test_the_task_does_not_retry_a_bad_file(db, monkeypatch):
    calls = counting(monkeypatch, fx.FxError("The rates file has no data row."))
    result = load_fx_rates_task.apply()
    assert isinstance(result.result, fx.FxError)
    assert len(calls) == 1
