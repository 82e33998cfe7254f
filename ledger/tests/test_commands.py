from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import card_for
from ledger.models import Authorization, FxSnapshot, LedgerEntry, SpendCounter


def run_network(capsys, *args):
    call_command("network", "--in-process", *args)
    return json.loads(capsys.readouterr().out)


def test_the_sandbox_network_authorizes_captures_and_reverses(alice, capsys):
    card = card_for(alice, "openai")
    decided = run_network(
        capsys,
        "authorize",
        "--card",
        str(card.pk),
        "--amount",
        "12.50",
        "--currency",
        "USD",
        "--mcc",
        "5734",
        "--id",
        "cli_1",
        "--trace",
        "PR-1",
    )
    assert decided["decision"] == "approved"
    assert decided["trace_id"] == "PR-1"
    # What it prints is what it takes: the network's authorization id.
    assert decided["authorization_id"] == "cli_1"
    assert isinstance(decided["decision_id"], int)
    capture = ("capture", "--authorization", decided["authorization_id"], "--amount", "5.00")
    captured = run_network(capsys, *capture, "--id", "cli_cap_1")
    assert captured["hold_state"] == "open"
    assert not captured["replayed"]
    # The same event again (same --id): the first answer, nothing written.
    again = run_network(capsys, *capture, "--id", "cli_cap_1")
    assert again["replayed"]
    assert again["entries"] == captured["entries"]
    reversed_ = run_network(capsys, "reverse", "--authorization", "cli_1")
    assert reversed_["hold_state"] == "closed"
    assert Authorization.objects.get(network_id="cli_1").captured_cents == 500


def test_the_sandbox_network_charges_as_the_vendor_unless_told_otherwise(alice, capsys):
    card = card_for(alice, "anthropic")
    args = ("authorize", "--card", str(card.pk), "--amount", "3.00", "--mcc", "5734")
    assert run_network(capsys, *args)["decision"] == "approved"
    pizza = run_network(capsys, *args, "--merchant", "JOE'S PIZZA")
    assert (pizza["reason"], pizza["merchant_lock"]) == ("merchant_not_allowed", "descriptor")


def test_the_sandbox_network_reports_declines_and_errors(alice, capsys):
    card = card_for(alice, "openai")
    declined = run_network(
        capsys, "authorize", "--card", str(card.pk), "--amount", "1.00", "--mcc", "5812"
    )
    assert declined["reason"] == "mcc_not_allowed"
    with pytest.raises(CommandError, match="400"):
        call_command(
            "network",
            "--in-process",
            "authorize",
            "--card",
            str(card.pk),
            "--amount",
            "-1",
            "--mcc",
            "5734",
        )


def test_the_sandbox_network_refuses_to_run_unsigned(alice, settings):
    settings.AGENTWALLET_NETWORK_SECRET = ""
    with pytest.raises(CommandError, match="AGENTWALLET_NETWORK_SECRET"):
        call_command(
            "network", "--in-process", "authorize", "--card", "x", "--amount", "1", "--mcc", "5734"
        )


def test_load_fx_rates_from_the_shipped_file_and_from_a_path(db, tmp_path, capsys):
    call_command("load_fx_rates")
    assert FxSnapshot.objects.get().currencies > 25
    custom = tmp_path / "rates.csv"
    custom.write_text("Date,USD,GBP,\n2026-11-27,1.2000,0.9000,\n")
    call_command("load_fx_rates", "--source", str(custom))
    latest = FxSnapshot.objects.latest()
    assert latest.rates_date.isoformat() == "2026-11-27"
    from ledger.fx import fx_quote

    quote = fx_quote("EUR", "USD")
    assert str(quote.rate) == "1.20000000"


def test_load_fx_rates_refuses_a_bad_file(db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing useful")
    with pytest.raises(CommandError, match="Could not load"):
        call_command("load_fx_rates", "--source", str(bad))
    with pytest.raises(CommandError, match="Could not load"):
        call_command("load_fx_rates", "--source", str(tmp_path / "missing.csv"))
    assert not FxSnapshot.objects.exists()


def test_rebuild_spend_counters_restores_them(alice, network, capsys):
    body = network.authorize(card_for(alice, "openai"), "4.00").json()
    network.capture(body["id"], "4.00", id="t")
    before = set(SpendCounter.objects.values_list("scope", "grain", "bucket_start", "cents"))
    SpendCounter.objects.all().delete()
    call_command("rebuild_spend_counters")
    after = set(SpendCounter.objects.values_list("scope", "grain", "bucket_start", "cents"))
    assert after == before
    assert LedgerEntry.objects.count() == 3


def test_rebuild_check_compares_what_decisions_read_and_changes_nothing(alice, network, capsys):
    from django.db.models import F

    card = card_for(alice, "openai")
    body = network.authorize(card, "4.00", trace_id="PR-9").json()
    network.capture(body["id"], "3.00", id="t9")
    call_command("rebuild_spend_counters", "--check")
    assert "counters agree with the ledger" in capsys.readouterr().out

    # A month counter that drifted from the ledger is found, and left as it was.
    SpendCounter.objects.filter(scope=f"card:{card.pk}", grain="month").update(cents=F("cents") + 1)
    with pytest.raises(CommandError, match="1 agent"):
        call_command("rebuild_spend_counters", "--check")
    assert f"agent {alice.agent.pk}" in capsys.readouterr().out
    drifted = SpendCounter.objects.get(scope=f"card:{card.pk}", grain="month")
    assert drifted.cents == 401  # the check rolled its rebuild back ($4 still counted)
    call_command("rebuild_spend_counters")
    assert SpendCounter.objects.get(scope=f"card:{card.pk}", grain="month").cents == 400


def test_load_fx_rates_from_a_configured_url(db, settings, capsys):
    """AGENTWALLET_FX_URL: fetched over HTTP (a local server stands in for the ECB)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = b"Date, USD, JPY, \n27 November 2026, 1.0500, 160.00, \n"

    class Ecb(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ecb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.AGENTWALLET_FX_URL = f"http://127.0.0.1:{server.server_port}/eurofxref.csv"
        call_command("load_fx_rates")
    finally:
        server.shutdown()
    snapshot = FxSnapshot.objects.get()
    assert snapshot.source.startswith("http://127.0.0.1")
    assert snapshot.rates_date.isoformat() == "2026-11-27"
    from ledger.fx import fx_quote

    assert str(fx_quote("USD", "JPY").rate) == "152.38095238"
