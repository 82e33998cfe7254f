"""The wallet against the official x402 implementation, offline: the agents' client pays
the official FastAPI paywall, whose official facilitator settles on an in-memory chain
(wallets/tests/x402_network.py). AgentWallet's API runs in process (WSGI), so every
test sees its own database transaction; only the paywall and the facilitator are
separate processes on loopback."""

from __future__ import annotations

import base64
import json
import threading
import time
from decimal import Decimal

import httpx
import pytest
import requests
from agentwallet_client import AgentWallet, PaymentDeclined, X402Transport
from agentwallet_client.x402 import X402Adapter
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from eth_account import Account
from x402 import x402ClientSync
from x402.http import decode_payment_required_header, decode_payment_signature_header
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import ExactEvmScheme

from ledger.models import LedgerEntry
from wallets.models import UsdcWallet, X402Payment
from wallets.tests.x402_requirements import v1_body
from wallets.x402.services import PayOutcome, PayRequest, x402_pay

FUNDS = 10_000_000  # 10 USDC


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The API runs in process, inside the test's transaction: its requests must not
    close the connection when they end (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def funded(alice, x402_network):
    """Alice's wallet with 10 USDC on the chain."""
    address = UsdcWallet.objects.get(agent=alice.agent).address
    x402_network.mint(address, FUNDS)
    return address


def agent_wallet(provisioned) -> AgentWallet:
    """The agents' client, talking to AgentWallet's WSGI application in process."""
    return AgentWallet(
        "http://testserver",
        provisioned.raw_key,
        transport=httpx.WSGITransport(app=get_wsgi_application()),
    )


def paying_client(provisioned, trace_id: str = "") -> httpx.Client:
    return httpx.Client(
        transport=X402Transport(agent_wallet(provisioned), trace_id=trace_id), timeout=30
    )


def test_a_paid_call_returns_200_with_one_ledger_row_and_the_chain_moved(
    alice, funded, x402_network, x402_pay_to
):
    payee_before = x402_network.balance(x402_pay_to)

    response = paying_client(alice, trace_id="PR-4823").get(f"{x402_network.server_url}/cheap")

    assert response.status_code == 200, response.text
    assert response.json() == {"data": "cheap"}
    payment = X402Payment.objects.get(agent=alice.agent)
    assert payment.status == "settled"
    assert payment.settlement_transaction in x402_network.transactions()
    entry = LedgerEntry.objects.get(agent=alice.agent)
    assert (entry.kind, entry.rail, entry.trace_id, entry.cap_cents) == (
        "x402_payment",
        "usdc",
        "PR-4823",
        1,
    )
    assert payment.entry == entry
    assert x402_network.balance(funded) == FUNDS - 10_000
    assert x402_network.balance(x402_pay_to) == payee_before + 10_000


def test_the_requests_adapter_pays_too(alice, funded, x402_network):
    session = requests.Session()
    session.mount("http://", X402Adapter(agent_wallet(alice)))

    response = session.get(f"{x402_network.server_url}/cheap", timeout=30)

    assert response.status_code == 200
    assert X402Payment.objects.get(agent=alice.agent).status == "settled"
    assert x402_network.balance(funded) == FUNDS - 10_000


def test_above_the_per_call_cap_nothing_is_signed(alice, funded, x402_network):
    transactions_before = x402_network.transactions()

    with pytest.raises(PaymentDeclined) as declined:
        paying_client(alice).get(f"{x402_network.server_url}/pricey")

    assert declined.value.reason == "x402_per_call_cap_exceeded"
    assert declined.value.headroom == Decimal("5.00")
    assert declined.value.cap.scope == "x402_per_call"
    assert not LedgerEntry.objects.filter(agent=alice.agent).exists()
    payment = X402Payment.objects.get(agent=alice.agent)
    assert (payment.status, payment.nonce) == ("declined", None)
    assert x402_network.transactions() == transactions_before
    assert x402_network.balance(funded) == FUNDS


def test_a_replayed_header_is_refused_by_the_server(alice, funded, x402_network):
    url = f"{x402_network.server_url}/cheap"
    first = httpx.get(url, headers={"Accept": "application/json"})
    signed = agent_wallet(alice).pay_x402(first.headers["PAYMENT-REQUIRED"], resource=url)
    assert httpx.get(url, headers={signed.header: signed.value}).status_code == 200

    replay = httpx.get(url, headers={signed.header: signed.value, "Accept": "application/json"})

    assert replay.status_code == 402
    error = json.loads(base64.b64decode(replay.headers["PAYMENT-REQUIRED"]))["error"]
    assert "nonce" in error
    assert x402_network.balance(funded) == FUNDS - 10_000  # paid once


def test_a_server_refusal_is_reported_and_released(alice, x402_network):
    """Unfunded, the wallet's payment fails the facilitator's simulation: the client
    reports it failed, and it is released once its valid-before has passed."""
    response = paying_client(alice).get(f"{x402_network.server_url}/cheap")

    assert response.status_code == 402
    payment = X402Payment.objects.get(agent=alice.agent)
    assert payment.status == "failed"
    assert payment.settlement_error
    from wallets.x402.services import x402_release_lapsed

    assert x402_release_lapsed(now=payment.valid_before + _an_hour()) == 1
    assert sum(e.cap_cents for e in LedgerEntry.objects.filter(agent=alice.agent)) == 0


def _an_hour():
    from datetime import timedelta

    return timedelta(hours=1)


def test_a_v1_body_is_paid_and_verified_by_the_facilitator(alice, funded, x402_network):
    body = v1_body("10000", payTo=Account.create().address)
    signed = agent_wallet(alice).pay_x402(body, resource="https://api.example.com/premium")
    assert signed.header == "X-PAYMENT"
    payload = json.loads(base64.b64decode(signed.value))

    verify = httpx.post(
        f"{x402_network.facilitator_url}/verify",
        json={
            "x402Version": 1,
            "paymentPayload": payload,
            "paymentRequirements": body["accepts"][0],
        },
    )

    assert verify.json()["isValid"] is True, verify.json()
    assert verify.json()["payer"] == funded


def test_the_official_client_reads_what_we_sign_as_its_own(alice, funded, x402_network):
    url = f"{x402_network.server_url}/cheap"
    required = httpx.get(url, headers={"Accept": "application/json"}).headers["PAYMENT-REQUIRED"]
    ours = agent_wallet(alice).pay_x402(required, resource=url)

    official = x402ClientSync()
    official.register("eip155:84532", ExactEvmScheme(signer=EthAccountSigner(Account.create())))
    theirs = official.create_payment_payload(decode_payment_required_header(required))
    decoded = decode_payment_signature_header(ours.value)

    assert decoded.x402_version == theirs.x402_version == 2
    assert decoded.accepted == theirs.accepted
    assert decoded.resource == theirs.resource
    assert set(decoded.payload) == set(theirs.payload) == {"signature", "authorization"}
    assert set(decoded.payload["authorization"]) == set(theirs.payload["authorization"])
    assert decoded.payload["authorization"]["from"] == funded
    assert httpx.get(url, headers={ours.header: ours.value}).status_code == 200


def test_the_wallet_code_needs_no_web3(tmp_path):
    """The runtime signs with eth-account alone: web3 is a test tool (the official
    facilitator's), not a dependency of the wallet."""
    import subprocess
    import sys

    probe = (
        "import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE']='agentwallet.test_settings';"
        "django.setup(); import wallets.x402.services, wallets.x402.apis;"
        "sys.exit(1 if 'web3' in sys.modules or 'x402' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)  # noqa: S603
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_two_payments_racing_for_the_last_dollar_sign_once(
    transactional_db, django_db_serialized_rollback, alice, requires_postgres
):
    policy = alice.agent.policy
    policy.daily_cap = Decimal("5.00")
    policy.save()
    x402_pay(request=_request(alice, "first", "4000000"))  # $4 of $5 spent
    barrier = threading.Barrier(2)
    outcomes: list[PayOutcome] = []

    def race(key: str) -> None:
        try:
            barrier.wait()
            outcomes.append(x402_pay(request=_request(alice, key, "1000000")))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(f"racer-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    statuses = sorted(outcome.payment.status for outcome in outcomes)
    assert statuses == ["declined", "signed"]
    assert [o.payment.reason for o in outcomes if o.payment.status == "declined"] == [
        "daily_cap_exceeded"
    ]
    spent = sum(e.cap_cents for e in LedgerEntry.objects.filter(agent=alice.agent))
    assert spent == 500
    assert X402Payment.objects.filter(agent=alice.agent, status="signed").count() == 2


def _request(provisioned, key: str, atomic: str) -> PayRequest:
    from wallets.tests.x402_requirements import requirement, v2_header

    time.sleep(0)  # the racers start at the barrier, not here
    return PayRequest(
        agent_id=provisioned.agent.pk,
        idempotency_key=key,
        payment_required=v2_header(requirement(atomic)),
        resource="https://api.example.com/premium",
    )


class _LosesFirstAnswer(httpx.BaseTransport):
    """AgentWallet decides and signs, but the agent never hears back the first time."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/x402/pay") and not self.lost:
            self.lost += 1
            raise httpx.ReadError("connection reset", request=request)
        return response


def test_a_lost_answer_is_asked_again_and_never_paid_twice(alice, funded, x402_network):
    flaky = _LosesFirstAnswer(httpx.WSGITransport(app=get_wsgi_application()))
    wallet = AgentWallet("http://testserver", alice.raw_key, transport=flaky)
    client = httpx.Client(transport=X402Transport(wallet), timeout=30)

    response = client.get(f"{x402_network.server_url}/cheap")

    assert response.status_code == 200
    assert flaky.lost == 1
    assert X402Payment.objects.filter(agent=alice.agent).count() == 1
    assert LedgerEntry.objects.filter(agent=alice.agent).count() == 1
    assert x402_network.balance(funded) == FUNDS - 10_000


def test_two_sweeps_release_a_lapsed_payment_once(
    transactional_db, django_db_serialized_rollback, alice, requires_postgres
):
    from datetime import timedelta

    from wallets.x402.services import x402_release_lapsed

    payment = x402_pay(request=_request(alice, "lapses", "3000000")).payment
    later = payment.valid_before + timedelta(hours=1)
    barrier = threading.Barrier(2)
    released: list[int] = []

    def sweep() -> None:
        try:
            barrier.wait()
            released.append(x402_release_lapsed(now=later))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(released) == [0, 1]
    entries = LedgerEntry.objects.filter(agent=alice.agent)
    assert sorted(e.kind for e in entries) == ["release", "x402_payment"]
    assert sum(e.cap_cents for e in entries) == 0
