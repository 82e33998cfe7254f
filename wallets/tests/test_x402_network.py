"""The offline x402 network works with the official SDK, v2 and v1, before we rely on it.

Why: AgentWallet's interoperability tests pay through these fixtures, so first prove that
the official client, middleware and facilitator agree with FakeChain, that settlement
moves the money, and that a replayed authorization is refused. No database is used.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from x402 import x402ClientSync
from x402.http import (
    PAYMENT_SIGNATURE_HEADER,
    decode_payment_required_header,
    decode_payment_response_header,
)
from x402.http.clients.requests import PaymentError, x402_requests
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.mechanisms.evm.types import AUTHORIZATION_TYPES

from wallets.tests.x402_network import BASE_SEPOLIA_CHAIN_ID, USDC_SEPOLIA, FakeChain

TEN_USDC = 10_000_000
CHEAP = 10_000  # $0.01 in USDC atomic units
JSON = {"Accept": "application/json"}  # not a browser: no 2 MB paywall page


def chain_api(facilitator: str) -> httpx.Client:
    return httpx.Client(base_url=facilitator, timeout=10.0, trust_env=False)


def mint(facilitator: str, address: str, atomic: int) -> None:
    with chain_api(facilitator) as api:
        api.post("/chain/mint", json={"address": address, "atomic": atomic}).raise_for_status()


def balance(facilitator: str, address: str) -> int:
    with chain_api(facilitator) as api:
        response = api.get(f"/chain/balance/{address}")
        response.raise_for_status()
        return int(response.json()["atomic"])


def official_session(account: Any):
    client = register_exact_evm_client(x402ClientSync(), EthAccountSigner(account))
    session = x402_requests(client)
    session.trust_env = False
    return session


def sign_v1_authorization(account: Any, pay_to: str, value: str) -> dict[str, Any]:
    """An exact/EVM payload signed with eth-account alone (EIP-3009, USDC's domain)."""
    now = int(time.time())
    nonce = secrets.token_bytes(32)
    authorization = {
        "from": account.address,
        "to": pay_to,
        "value": value,
        "validAfter": str(now - 600),
        "validBefore": str(now + 120),
        "nonce": "0x" + nonce.hex(),
    }
    signed = Account.sign_typed_data(
        account.key,
        domain_data={
            "name": "USDC",
            "version": "2",
            "chainId": BASE_SEPOLIA_CHAIN_ID,
            "verifyingContract": USDC_SEPOLIA,
        },
        message_types=AUTHORIZATION_TYPES,
        message_data={
            **{k: int(authorization[k]) for k in ("value", "validAfter", "validBefore")},
            "from": account.address,
            "to": pay_to,
            "nonce": nonce,
        },
    )
    return {"signature": "0x" + signed.signature.hex(), "authorization": authorization}


def test_fake_chain_really_verifies_eip712_signatures(x402_pay_to: str) -> None:
    chain = FakeChain()
    account = Account.create()
    payload = sign_v1_authorization(account, x402_pay_to, str(CHEAP))
    auth = payload["authorization"]
    domain = {
        "name": "USDC",
        "version": "2",
        "chainId": BASE_SEPOLIA_CHAIN_ID,
        "verifyingContract": USDC_SEPOLIA,
    }
    message = {
        **auth,
        **{k: int(auth[k]) for k in ("value", "validAfter", "validBefore")},
        "nonce": bytes.fromhex(auth["nonce"][2:]),
    }
    signature = bytes.fromhex(payload["signature"][2:])

    def verify(**changes: Any) -> bool:
        return chain.verify_typed_data(
            changes.pop("address", account.address),
            {**domain, **changes.pop("domain", {})},
            AUTHORIZATION_TYPES,
            "TransferWithAuthorization",
            {**message, **changes},
            signature,
        )

    assert verify()
    assert not verify(value=CHEAP + 1)
    assert not verify(address=x402_pay_to)
    assert not verify(domain={"name": "USD Coin"})
    assert not verify(domain={"chainId": 8453})


def test_official_client_pays_cheap_once_and_a_replay_is_refused(
    x402_facilitator: str, x402_server: str, x402_pay_to: str
) -> None:
    payer = Account.create()
    mint(x402_facilitator, payer.address, TEN_USDC)
    payee_before = balance(x402_facilitator, x402_pay_to)

    response = official_session(payer).get(f"{x402_server}/cheap", headers=JSON)

    assert response.status_code == 200, response.text
    assert response.json() == {"data": "cheap"}
    settled = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
    assert settled.success is True
    assert settled.transaction.startswith("0x")
    assert len(settled.transaction) == 66
    assert settled.payer == payer.address
    with chain_api(x402_facilitator) as api:
        assert settled.transaction in api.get("/chain/transactions").json()["transactions"]
    assert balance(x402_facilitator, payer.address) == TEN_USDC - CHEAP
    assert balance(x402_facilitator, x402_pay_to) == payee_before + CHEAP

    signature_header = response.request.headers[PAYMENT_SIGNATURE_HEADER]
    with httpx.Client(timeout=10.0, trust_env=False) as plain:
        replay = plain.get(
            f"{x402_server}/cheap", headers={**JSON, PAYMENT_SIGNATURE_HEADER: signature_header}
        )

    assert replay.status_code == 402
    refused = decode_payment_required_header(replay.headers["PAYMENT-REQUIRED"])
    assert refused.error == "invalid_exact_evm_nonce_already_used"
    assert balance(x402_facilitator, payer.address) == TEN_USDC - CHEAP
    assert balance(x402_facilitator, x402_pay_to) == payee_before + CHEAP


def test_official_client_refuses_the_pricey_route_by_default(
    x402_facilitator: str, x402_server: str
) -> None:
    payer = Account.create()
    mint(x402_facilitator, payer.address, TEN_USDC)

    with pytest.raises(PaymentError):
        official_session(payer).get(f"{x402_server}/pricey", headers=JSON)

    assert balance(x402_facilitator, payer.address) == TEN_USDC


def test_v1_payload_verifies_then_settles_once(x402_facilitator: str, x402_pay_to: str) -> None:
    payer = Account.create()
    mint(x402_facilitator, payer.address, TEN_USDC)
    payee_before = balance(x402_facilitator, x402_pay_to)
    requirements = {
        "scheme": "exact",
        "network": "base-sepolia",
        "maxAmountRequired": str(CHEAP),
        "resource": "http://x/cheap",
        "description": "",
        "mimeType": "application/json",
        "payTo": x402_pay_to,
        "maxTimeoutSeconds": 60,
        "asset": USDC_SEPOLIA,
        "extra": {"name": "USDC", "version": "2"},
    }
    body = {
        "x402Version": 1,
        "paymentPayload": {
            "x402Version": 1,
            "scheme": "exact",
            "network": "base-sepolia",
            "payload": sign_v1_authorization(payer, x402_pay_to, str(CHEAP)),
        },
        "paymentRequirements": requirements,
    }

    with chain_api(x402_facilitator) as api:
        verified = api.post("/verify", json=body)
        first = api.post("/settle", json=body)
        second = api.post("/settle", json=body)

    assert verified.status_code == 200
    assert verified.json()["isValid"] is True, verified.json()
    assert verified.json()["payer"] == payer.address
    assert first.status_code == 200
    assert first.json()["success"] is True, first.json()
    assert first.json()["transaction"].startswith("0x")
    assert first.json()["network"] == "base-sepolia"
    assert second.status_code == 200
    assert second.json()["success"] is False
    assert second.json()["errorReason"] == "invalid_exact_evm_nonce_already_used"
    assert second.json()["transaction"] == ""
    assert balance(x402_facilitator, payer.address) == TEN_USDC - CHEAP
    assert balance(x402_facilitator, x402_pay_to) == payee_before + CHEAP
