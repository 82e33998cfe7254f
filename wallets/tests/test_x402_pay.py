"""POST /api/agents/{id}/x402/pay and what follows it, without a server: the decision,
the ledger, the signature, idempotency, declines and the release of what never settled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_typed_data

from approvals.models import ApprovalRequest
from ledger.models import LedgerEntry, SpendCounter
from ledger.services import counters_check
from policies.models import Vendor
from wallets.models import UsdcWallet, X402Payment
from wallets.tests.x402_requirements import (
    PAY_TO,
    RESOURCE,
    USDC_BASE,
    USDC_SEPOLIA,
    decode,
    requirement,
    settlement,
    v1_body,
    v2_header,
)
from wallets.x402.networks import BASE_SEPOLIA
from wallets.x402.services import x402_release_lapsed
from wallets.x402.signing import TRANSFER_WITH_AUTHORIZATION


def pay(client, agent, payment_required, *, key="key-1", **body):
    return client.post(
        f"/api/agents/{agent.pk}/x402/pay",
        {"payment_required": payment_required, "resource": RESOURCE, **body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def recovered_signer(header_value: str) -> str:
    """Who signed the payload's EIP-3009 authorization, as a facilitator recovers it."""
    payload = decode(header_value)["payload"]
    auth = payload["authorization"]
    message = {
        "from": auth["from"],
        "to": auth["to"],
        "value": int(auth["value"]),
        "validAfter": int(auth["validAfter"]),
        "validBefore": int(auth["validBefore"]),
        "nonce": bytes.fromhex(auth["nonce"][2:]),
    }
    typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **TRANSFER_WITH_AUTHORIZATION,
            },
            "primaryType": "TransferWithAuthorization",
            "domain": BASE_SEPOLIA.domain(),
            "message": message,
        }
    )
    return Account.recover_message(typed, signature=payload["signature"])


def test_a_v2_payment_is_recorded_then_signed(alice, alice_client):
    response = pay(alice_client, alice.agent, v2_header(), trace_id="PR-7")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["header"] == "PAYMENT-SIGNATURE"
    assert body["x402_version"] == 2
    assert body["amount"] == {"amount": "0.01", "currency": "USD"}
    assert (body["network"], body["pay_to"]) == ("eip155:84532", PAY_TO)
    payload = decode(body["value"])
    assert payload["accepted"] == requirement()  # echoed verbatim
    assert payload["resource"]["url"] == RESOURCE
    wallet = UsdcWallet.objects.get(agent=alice.agent)
    auth = payload["payload"]["authorization"]
    assert (auth["from"], auth["to"], auth["value"]) == (wallet.address, PAY_TO, "10000")
    assert recovered_signer(body["value"]) == wallet.address
    entry = LedgerEntry.objects.get(pk=body["ledger_entry_id"])
    assert (entry.kind, entry.rail, entry.trace_id, entry.cap_cents) == (
        "x402_payment",
        "usdc",
        "PR-7",
        1,
    )
    payment = X402Payment.objects.get(pk=body["payment_id"])
    assert (payment.status, payment.nonce, payment.entry_id) == (
        "signed",
        auth["nonce"],
        entry.pk,
    )
    assert int(payment.valid_before.timestamp()) == int(auth["validBefore"])
    assert counters_check() == []


def test_a_v1_body_is_paid_with_x_payment(alice, alice_client):
    response = pay(alice_client, alice.agent, v1_body("2500000"))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["header"], body["x402_version"]) == ("X-PAYMENT", 1)
    assert body["amount"] == {"amount": "2.50", "currency": "USD"}
    payload = decode(body["value"])
    assert (payload["x402Version"], payload["scheme"], payload["network"]) == (
        1,
        "exact",
        "base-sepolia",
    )
    assert recovered_signer(body["value"]) == UsdcWallet.objects.get(agent=alice.agent).address


def test_a_sub_cent_price_is_kept_exact_and_counts_a_whole_cent(alice, alice_client):
    response = pay(alice_client, alice.agent, v2_header(requirement("1500")))

    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == {"amount": "0.0015", "currency": "USD"}
    payment = X402Payment.objects.get(pk=response.json()["payment_id"])
    assert payment.atomic_amount == Decimal("1500")
    assert payment.entry.cap_cents == 1  # caps count in cents, rounded against the agent
    assert "0.0015 USDC" in payment.entry.memo


def test_above_the_per_call_cap_nothing_is_signed_or_spent(alice, alice_client):
    response = pay(alice_client, alice.agent, v2_header(requirement("6000000")))

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "x402_per_call_cap_exceeded"
    assert error["cap"] == {
        "scope": "x402_per_call",
        "limit": {"amount": "5.00", "currency": "USD"},
        "remaining": {"amount": "5.00", "currency": "USD"},
    }
    assert "value" not in response.json()
    assert not LedgerEntry.objects.filter(agent=alice.agent).exists()
    payment = X402Payment.objects.get(pk=error["payment_id"])
    assert (payment.status, payment.nonce, payment.header_name) == ("declined", None, "")


def test_exactly_the_per_call_cap_is_paid(alice, alice_client):
    assert pay(alice_client, alice.agent, v2_header(requirement("5000000"))).status_code == 201
    over = pay(alice_client, alice.agent, v2_header(requirement("5000001")), key="key-2")
    assert over.json()["error"]["code"] == "x402_per_call_cap_exceeded"


@pytest.mark.parametrize(
    ("accepts", "code"),
    [
        ([requirement(asset="0x" + "11" * 20)], "x402_asset_not_allowed"),
        ([requirement(asset=USDC_BASE)], "x402_asset_not_allowed"),
        ([requirement(extra={"name": "USD Coin", "version": "2"})], "x402_asset_not_allowed"),
        ([requirement(network="eip155:8453", asset=USDC_BASE)], "x402_network_not_allowed"),
        ([requirement(network="eip155:1")], "x402_network_not_allowed"),
        ([requirement(network="base-sepolia")], "x402_network_not_allowed"),  # v1 name in v2
        ([requirement(scheme="upto")], "x402_scheme_unsupported"),
        (
            [requirement(extra={"name": "USDC", "version": "2", "assetTransferMethod": "permit2"})],
            "x402_scheme_unsupported",
        ),
    ],
)
def test_a_requirement_we_would_not_pay_is_declined(alice, alice_client, accepts, code):
    response = pay(alice_client, alice.agent, v2_header(*accepts))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == code
    assert not LedgerEntry.objects.exists()


def test_the_payable_requirement_is_chosen_among_others(alice, alice_client):
    accepts = [requirement(asset="0x" + "11" * 20), requirement("20000")]
    response = pay(alice_client, alice.agent, v2_header(*accepts))

    assert response.status_code == 201
    assert decode(response.json()["value"])["accepted"] == requirement("20000")


@pytest.mark.parametrize(
    "payment_required",
    [
        "not base64 at all!",
        "eyJub3QiOiAieDQwMiJ9",  # base64 of {"not": "x402"}
        {"x402Version": 3, "accepts": [requirement()]},
        {"x402Version": 2, "accepts": []},
        {"x402Version": 2, "accepts": "everything"},
        [1, 2],
        12,
        None,
    ],
)
def test_what_is_not_x402_is_a_400_and_writes_nothing(alice, alice_client, payment_required):
    response = pay(alice_client, alice.agent, payment_required)

    assert response.status_code == 400
    assert not X402Payment.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": "-5"},
        {"amount": "0"},
        {"amount": "1.5"},
        {"amount": 10000},
        {"amount": "9" * 40},
        {"payTo": "0xnot-an-address"},
        {"payTo": "0x209693bc6afc0c5328ba36faf03c514ef312287c".upper()},
        {"maxTimeoutSeconds": 3},
        {"maxTimeoutSeconds": "60"},
    ],
)
def test_a_hostile_requirement_is_a_400_and_writes_nothing(alice, alice_client, changes):
    response = pay(alice_client, alice.agent, v2_header(requirement() | changes))

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_payment_required"
    assert not X402Payment.objects.exists()


def test_the_idempotency_key_is_required(alice, alice_client):
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/x402/pay",
        {"payment_required": v2_header(), "resource": RESOURCE},
        format="json",
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


def test_the_same_key_never_signs_twice(alice, alice_client):
    first = pay(alice_client, alice.agent, v2_header())
    again = pay(alice_client, alice.agent, v2_header())

    assert again.status_code == 201
    assert again.json()["value"] == first.json()["value"]
    assert again.json()["replayed"] is True
    assert X402Payment.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_the_same_key_with_another_body_is_a_conflict(alice, alice_client):
    pay(alice_client, alice.agent, v2_header())
    other = pay(alice_client, alice.agent, v2_header(requirement("20000")))

    assert other.status_code == 409
    assert LedgerEntry.objects.count() == 1


def test_a_declined_key_answers_the_same_decline_again(alice, alice_client):
    first = pay(alice_client, alice.agent, v2_header(requirement("6000000")))
    again = pay(alice_client, alice.agent, v2_header(requirement("6000000")))

    assert again.status_code == 403
    assert again.json()["error"]["payment_id"] == first.json()["error"]["payment_id"]


def test_another_agents_wallet_answers_404(alice, bob_client):
    response = pay(bob_client, alice.agent, v2_header())
    assert response.status_code == 404
    assert bob_client.get(f"/api/agents/{alice.agent.pk}/wallet").status_code == 404


def test_the_wallet_shows_its_address_never_its_key(alice, alice_client):
    response = alice_client.get(f"/api/agents/{alice.agent.pk}/wallet")

    assert response.status_code == 200
    wallet = UsdcWallet.objects.get(agent=alice.agent)  # made at provisioning
    assert response.json()["address"] == wallet.address
    assert response.json()["networks"] == ["eip155:84532"]
    key = Account.from_key  # the key is sealed at rest: not the hex anywhere
    assert "private" not in response.content.decode()
    assert wallet.private_key_encrypted.startswith("gAAAA")  # Fernet
    assert key is not None


def test_a_policy_without_x402_declines_and_has_no_wallet(provision, starter_policy, client):
    starter_policy.x402_allowed = False
    starter_policy.x402_per_call_cap = None
    starter_policy.save()
    agent = provision(name="no-x402")
    from conftest import keyed_client

    agent_client = keyed_client(agent.raw_key)
    assert agent_client.get(f"/api/agents/{agent.agent.pk}/wallet").status_code == 404
    response = pay(agent_client, agent.agent, v2_header())
    assert response.json()["error"]["code"] == "x402_not_allowed"


def test_a_frozen_agent_pays_nothing(alice, alice_client, staff_client):
    staff_client.post(
        f"/api/agents/{alice.agent.pk}/freeze", {"reason": "prompt injection"}, format="json"
    )
    response = pay(alice_client, alice.agent, v2_header())
    assert response.json()["error"]["code"] == "wallet_frozen"

    staff_client.post(f"/api/agents/{alice.agent.pk}/unfreeze", {}, format="json")
    assert pay(alice_client, alice.agent, v2_header(), key="key-2").status_code == 201


def test_a_payee_allowlist_refuses_other_payees(alice, alice_client, starter_policy):
    starter_policy.x402_payees = ["0x" + "22" * 20]
    starter_policy.save()
    assert pay(alice_client, alice.agent, v2_header()).json()["error"]["code"] == (
        "x402_payee_not_allowed"
    )
    starter_policy.x402_payees = [PAY_TO.lower()]
    starter_policy.save()
    assert pay(alice_client, alice.agent, v2_header(), key="key-2").status_code == 201


def test_a_known_payee_names_its_vendor(alice, alice_client):
    vendor = Vendor.objects.create(slug="premium-data", name="Premium Data", x402_pay_to=[PAY_TO])
    response = pay(alice_client, alice.agent, v2_header())
    entry = LedgerEntry.objects.get(pk=response.json()["ledger_entry_id"])
    assert entry.vendor == vendor


def test_the_daily_cap_counts_x402_and_raises_an_approval(alice, alice_client, starter_policy):
    starter_policy.daily_cap = Decimal("5.00")
    starter_policy.save()
    assert pay(alice_client, alice.agent, v2_header(requirement("4000000"))).status_code == 201

    response = pay(alice_client, alice.agent, v2_header(requirement("2000000")), key="key-2")

    error = response.json()["error"]
    assert error["code"] == "daily_cap_exceeded"
    assert error["cap"]["remaining"] == {"amount": "1.00", "currency": "USD"}
    approval = ApprovalRequest.objects.get(pk=error["approval_id"])
    assert (approval.scope, approval.requested_amount.amount) == ("daily", Decimal("2.00"))


def test_an_approved_bump_lets_the_payment_through(
    alice, alice_client, staff_client, starter_policy
):
    starter_policy.daily_cap = Decimal("5.00")
    starter_policy.save()
    pay(alice_client, alice.agent, v2_header(requirement("4000000")))
    declined = pay(alice_client, alice.agent, v2_header(requirement("2000000")), key="key-2")
    approval_id = declined.json()["error"]["approval_id"]

    approved = staff_client.post(f"/api/approvals/{approval_id}/approve", {}, format="json")
    assert approved.status_code == 200, approved.json()

    again = pay(alice_client, alice.agent, v2_header(requirement("2000000")), key="key-3")
    assert again.status_code == 201


def test_the_trace_cap_spans_cards_and_x402(alice, alice_client):
    # The starter policy's per-PR cap is $20: four $5 calls fit, the fifth does not.
    for n in range(4):
        ok = pay(
            alice_client,
            alice.agent,
            v2_header(requirement("5000000")),
            key=f"k{n}",
            trace_id="PR-9",
        )
        assert ok.status_code == 201
    over = pay(
        alice_client, alice.agent, v2_header(requirement("10000")), key="k5", trace_id="PR-9"
    )
    assert over.json()["error"]["code"] == "trace_cap_exceeded"
    assert over.json()["error"]["trace_id"] == "PR-9"


def test_the_budget_and_ledger_show_x402(alice, alice_client):
    pay(alice_client, alice.agent, v2_header(requirement("250000")), trace_id="PR-3")

    budget = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert budget["rolling_24h"]["spent"] == {"amount": "0.25", "currency": "USD"}
    wallet = UsdcWallet.objects.get(agent=alice.agent)
    assert budget["x402"] == {
        "allowed": True,
        "per_call_cap": {"amount": "5.00", "currency": "USD"},
        "wallet_address": wallet.address,
        "wallet_status": "active",
        "unsettled": {"amount": "0.25", "currency": "USD"},
        "unsettled_payments": 1,
    }
    ledger = alice_client.get("/api/ledger", {"rail": "usdc"}).json()["results"]
    assert [(row["kind"], row["trace_id"]) for row in ledger] == [("x402_payment", "PR-3")]
    assert alice_client.get("/api/ledger", {"rail": "card"}).json()["results"] == []


def settle(client, agent, payment_id, value):
    return client.post(
        f"/api/agents/{agent.pk}/x402/payments/{payment_id}/settled",
        {"payment_response": value},
        format="json",
    )


def test_a_settlement_is_recorded_once(alice, alice_client):
    payment_id = pay(alice_client, alice.agent, v2_header()).json()["payment_id"]

    response = settle(alice_client, alice.agent, payment_id, settlement())
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["transaction"]) == (
        "settled",
        "0x" + "ab" * 32,
    )
    assert settle(alice_client, alice.agent, payment_id, settlement()).status_code == 200
    other = settle(alice_client, alice.agent, payment_id, settlement(transaction="0x" + "cd" * 32))
    assert other.status_code == 409


def test_a_bad_settlement_report_is_a_400(alice, alice_client, bob_client):
    payment_id = pay(alice_client, alice.agent, v2_header()).json()["payment_id"]

    assert settle(alice_client, alice.agent, payment_id, "garbage").status_code == 400
    assert settle(alice_client, alice.agent, payment_id, {"success": "yes"}).status_code == 400
    assert settle(bob_client, alice.agent, payment_id, settlement()).status_code == 404
    assert X402Payment.objects.get(pk=payment_id).status == "signed"


def test_what_never_settles_is_released_once_after_valid_before(alice, alice_client, settings):
    settings.AGENTWALLET_X402_RELEASE_MARGIN_SECONDS = 120
    body = pay(alice_client, alice.agent, v2_header(requirement("3000000"))).json()
    payment = X402Payment.objects.get(pk=body["payment_id"])

    assert x402_release_lapsed(now=payment.valid_before + timedelta(seconds=119)) == 0
    later = payment.valid_before + timedelta(seconds=121)
    assert x402_release_lapsed(now=later) == 1
    assert x402_release_lapsed(now=later) == 0

    payment.refresh_from_db()
    assert payment.status == "released"
    release = payment.release_entry
    assert (release.kind, release.rail, release.cap_cents) == ("release", "usdc", -300)
    assert counters_check() == []
    with time_machine.travel(later, tick=False):
        budget = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert budget["rolling_24h"]["spent"] == {"amount": "0.00", "currency": "USD"}


def test_a_failed_payment_still_counts_until_it_lapses(alice, alice_client):
    payment_id = pay(alice_client, alice.agent, v2_header(requirement("3000000"))).json()[
        "payment_id"
    ]
    failed = settle(alice_client, alice.agent, payment_id, settlement(False, errorReason="nope"))
    assert (failed.json()["status"], failed.json()["error_reason"]) == ("failed", "nope")
    budget = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert budget["rolling_24h"]["spent"] == {"amount": "3.00", "currency": "USD"}

    payment = X402Payment.objects.get(pk=payment_id)
    assert x402_release_lapsed(now=payment.valid_before + timedelta(hours=1)) == 1


def test_a_success_reported_after_the_release_counts_again(alice, alice_client):
    payment_id = pay(alice_client, alice.agent, v2_header(requirement("3000000"))).json()[
        "payment_id"
    ]
    payment = X402Payment.objects.get(pk=payment_id)
    x402_release_lapsed(now=payment.valid_before + timedelta(hours=1))

    response = settle(alice_client, alice.agent, payment_id, settlement())

    assert response.json()["status"] == "settled"
    payment.refresh_from_db()
    assert payment.late_entry.cap_cents == 300
    total = sum(e.cap_cents for e in LedgerEntry.objects.filter(agent=alice.agent))
    assert total == 300
    assert counters_check() == []


def test_a_settled_payment_is_never_released(alice, alice_client):
    payment_id = pay(alice_client, alice.agent, v2_header()).json()["payment_id"]
    settle(alice_client, alice.agent, payment_id, settlement())
    payment = X402Payment.objects.get(pk=payment_id)

    assert x402_release_lapsed(now=payment.valid_before + timedelta(days=1)) == 0


def test_the_window_is_capped_whatever_the_server_asks(alice, alice_client, settings):
    settings.AGENTWALLET_X402_MAX_VALIDITY_SECONDS = 300
    before = int(timezone.now().timestamp())
    body = pay(alice_client, alice.agent, v2_header(requirement(maxTimeoutSeconds=86400))).json()
    auth = decode(body["value"])["payload"]["authorization"]

    assert before + 300 <= int(auth["validBefore"]) <= before + 302
    assert int(auth["validAfter"]) <= before - 600 + 2
    assert SpendCounter.objects.filter(scope=f"agent:{alice.agent.pk}").exists()
    assert BASE_SEPOLIA.usdc == USDC_SEPOLIA


def test_payments_are_listed_and_shown_to_their_agent_only(alice, alice_client, bob_client):
    signed = pay(alice_client, alice.agent, v2_header(), trace_id="PR-1").json()
    pay(alice_client, alice.agent, v2_header(requirement("6000000")), key="key-2")

    listed = alice_client.get(f"/api/agents/{alice.agent.pk}/x402/payments").json()["results"]
    assert [row["status"] for row in listed] == ["declined", "signed"]
    shown = alice_client.get(f"/api/agents/{alice.agent.pk}/x402/payments/{signed['payment_id']}")
    assert shown.json() | {"decided_at": None, "nonce": None, "valid_before": None} == {
        "payment_id": signed["payment_id"],
        "status": "signed",
        "reason": "",
        "x402_version": 2,
        "amount": {"amount": "0.01", "currency": "USD"},
        "cap_amount": {"amount": "0.01", "currency": "USD"},
        "network": "eip155:84532",
        "pay_to": PAY_TO,
        "vendor": None,
        "resource": RESOURCE,
        "trace_id": "PR-1",
        "nonce": None,
        "valid_before": None,
        "transaction": "",
        "error_reason": "",
        "approval_id": None,
        "ledger_entry_id": signed["ledger_entry_id"],
        "release_entry_id": None,
        "decided_at": None,
    }
    assert "value" not in shown.json()  # the signed header is the agent's once, at pay
    foreign = f"/api/agents/{alice.agent.pk}/x402/payments/{signed['payment_id']}"
    assert bob_client.get(foreign).status_code == 404
    assert bob_client.get(f"/api/agents/{alice.agent.pk}/x402/payments").status_code == 404


def test_the_portal_shows_the_wallet_payments_and_their_trace(alice, alice_client, client):
    from django.contrib.auth.models import User

    pay(alice_client, alice.agent, v2_header(requirement("1230000")), trace_id="PR-55")
    pay(alice_client, alice.agent, v2_header(requirement("6000000")), key="key-2")
    User.objects.create_superuser("root", password="pw-123456789")
    client.login(username="root", password="pw-123456789")

    agent_page = client.get(f"/agents/{alice.agent.pk}/").content.decode()
    wallet = UsdcWallet.objects.get(agent=alice.agent)
    assert wallet.address in agent_page
    assert "x402_per_call_cap_exceeded" in agent_page
    ledger = client.get("/ledger/", {"rail": "usdc"})
    assert ledger.status_code == 200
    assert "1.23" in ledger.content.decode()
    trace = client.get("/traces/PR-55/")
    assert trace.status_code == 200
    assert "1.23" in trace.content.decode()
    assert client.get("/traces/").status_code == 200
    assert client.get("/").status_code == 200
    export = client.get("/ledger/export.csv", {"rail": "usdc"})
    assert "x402_payment" in b"".join(export.streaming_content).decode()
    api_trace = alice_client.get("/api/traces/PR-55").json()
    assert (api_trace["spent"], api_trace["entries"]) == (
        {"amount": "1.23", "currency": "USD"},
        1,
    )


def test_an_agent_frozen_before_it_had_a_wallet_pays_nothing(alice, alice_client, staff_client):
    UsdcWallet.objects.filter(agent=alice.agent).delete()  # as if provisioned without x402
    staff_client.post(f"/api/agents/{alice.agent.pk}/freeze", {"reason": "x"}, format="json")

    response = pay(alice_client, alice.agent, v2_header())

    assert response.json()["error"]["code"] == "wallet_frozen"


def test_the_first_payment_makes_the_wallet(alice, alice_client):
    UsdcWallet.objects.filter(agent=alice.agent).delete()

    response = pay(alice_client, alice.agent, v2_header())

    assert response.status_code == 201
    wallet = UsdcWallet.objects.get(agent=alice.agent)
    assert recovered_signer(response.json()["value"]) == wallet.address
