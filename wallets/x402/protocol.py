"""Reading a server's 402 and writing our answer, in both protocol versions.

v2 sends `PAYMENT-REQUIRED: base64(JSON)` and takes `PAYMENT-SIGNATURE`; v1 sends the
requirements as the 402's JSON body and takes `X-PAYMENT`. Either way the answer is
base64 of UTF-8 JSON. A 402 comes from a server we do not trust: it is parsed strictly,
and a requirement is chosen only when everything it names is pinned here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_utils import is_address, to_checksum_address

from wallets.x402.networks import USDC_DECIMALS, UsdcNetwork, accepted_networks, network_named

V1_HEADER = "X-PAYMENT"
V2_HEADER = "PAYMENT-SIGNATURE"

# Why no requirement of a 402 could be paid (DESIGN's decline codes), most telling first.
SCHEME_UNSUPPORTED = "x402_scheme_unsupported"
NETWORK_NOT_ALLOWED = "x402_network_not_allowed"
ASSET_NOT_ALLOWED = "x402_asset_not_allowed"

MAX_PAYMENT_REQUIRED_BYTES = 64 * 1024
_ATOMIC = re.compile(r"[0-9]{1,30}", re.ASCII)  # up to 10^24 USDC: anything real fits
_MIN_TIMEOUT_SECONDS = 10  # a facilitator wants validBefore at least 6 s away


class MalformedPaymentRequired(ValueError):
    """The 402 cannot be read as x402 at all (a 400 for the agent, nothing written)."""


@dataclass(frozen=True)
class Offer:
    """The one requirement of a 402 we would pay, with what paying it means."""

    x402_version: int
    network: UsdcNetwork
    requirement: dict[str, Any]  # as the server sent it: echoed verbatim in v2
    resource: dict[str, Any] | None  # v2's top-level resource, echoed too
    pay_to: str  # checksummed
    atomic_amount: int  # USDC's smallest unit
    max_timeout_seconds: int

    @property
    def amount(self) -> Decimal:
        """In USDC (dollars), exact: 6 decimals."""
        return Decimal(self.atomic_amount).scaleb(-USDC_DECIMALS)

    @property
    def header_name(self) -> str:
        return V2_HEADER if self.x402_version == 2 else V1_HEADER


@dataclass(frozen=True)
class Refusal:
    """No requirement was payable; `reason` says why for the most promising one."""

    x402_version: int
    reason: str
    detail: str


def decode_payment_required(value: Any) -> dict[str, Any]:
    """The 402 as JSON: v2's header value (base64) or v1's body (an object or its JSON)."""
    if isinstance(value, dict):
        document: Any = value
    elif isinstance(value, str):
        if len(value) > MAX_PAYMENT_REQUIRED_BYTES:
            raise MalformedPaymentRequired("payment_required is too long.")
        document = _json_or_base64_json(value.strip())
    else:
        raise MalformedPaymentRequired(
            "payment_required must be the PAYMENT-REQUIRED header value (base64) or the "
            "402 response's JSON body."
        )
    if not isinstance(document, dict):
        raise MalformedPaymentRequired("payment_required must be a JSON object.")
    if document.get("x402Version") not in (1, 2) or isinstance(document["x402Version"], bool):
        raise MalformedPaymentRequired("x402Version must be 1 or 2.")
    accepts = document.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        raise MalformedPaymentRequired("accepts must be a non-empty list of requirements.")
    if len(accepts) > 50 or not all(isinstance(item, dict) for item in accepts):
        raise MalformedPaymentRequired("accepts must be a list of at most 50 objects.")
    resource = document.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise MalformedPaymentRequired("resource must be an object.")
    return document


def _json_or_base64_json(text: str, name: str = "payment_required") -> Any:
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise MalformedPaymentRequired(f"{name} is not valid JSON: {error}") from None
    try:
        raw = base64.b64decode(text, validate=True)
        return json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MalformedPaymentRequired(
            f"{name} is neither base64 of JSON (a header's value) nor JSON."
        ) from None


def choose_offer(document: dict[str, Any]) -> Offer | Refusal:
    """The first requirement we can pay: scheme `exact` by EIP-3009 on an accepted
    network, in that network's pinned USDC with its pinned EIP-712 domain."""
    version = int(document["x402Version"])
    accepted = {network.caip2 for network in accepted_networks()}
    refusals: list[tuple[int, str, str]] = []  # (rank, reason, detail)
    for requirement in document["accepts"]:
        scheme = requirement.get("scheme")
        extra = requirement.get("extra") if isinstance(requirement.get("extra"), dict) else {}
        method = extra.get("assetTransferMethod", "eip3009")
        if scheme != "exact" or method != "eip3009":
            refusals.append(
                (0, SCHEME_UNSUPPORTED, f"scheme {scheme!r} by {method!r}: only exact by EIP-3009")
            )
            continue
        name = requirement.get("network")
        network = network_named(name) if isinstance(name, str) else None
        if (
            network is None
            or network.caip2 not in accepted
            or not _named_right(version, name, network)
        ):
            refusals.append((1, NETWORK_NOT_ALLOWED, f"network {name!r} is not one we pay on"))
            continue
        asset = requirement.get("asset")
        if not isinstance(asset, str) or asset.lower() != network.usdc.lower():
            refusals.append((2, ASSET_NOT_ALLOWED, f"asset {asset!r} is not USDC on {name}"))
            continue
        if (extra.get("name"), extra.get("version")) != (
            network.domain_name,
            network.domain_version,
        ):
            refusals.append(
                (2, ASSET_NOT_ALLOWED, f"USDC's EIP-712 domain on {name} is not what it names")
            )
            continue
        return Offer(
            x402_version=version,
            network=network,
            requirement=requirement,
            resource=document.get("resource"),
            pay_to=_address(requirement.get("payTo")),
            atomic_amount=_atomic(
                requirement.get("amount" if version == 2 else "maxAmountRequired")
            ),
            max_timeout_seconds=_timeout(requirement.get("maxTimeoutSeconds")),
        )
    _, reason, detail = max(refusals, key=lambda refusal: refusal[0])
    return Refusal(x402_version=version, reason=reason, detail=detail)


def _named_right(version: int, name: str, network: UsdcNetwork) -> bool:
    """v2 names networks by CAIP-2, v1 by name: the other's name is not the protocol."""
    return name == (network.caip2 if version == 2 else network.v1_name)


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value) or not value.startswith("0x"):
        raise MalformedPaymentRequired("payTo must be an EVM address (0x and 40 hex digits).")
    return to_checksum_address(value)


def _atomic(value: Any) -> int:
    if not isinstance(value, str) or not _ATOMIC.fullmatch(value) or int(value) == 0:
        raise MalformedPaymentRequired(
            "The amount must be a positive whole number of USDC's smallest unit, as a string."
        )
    return int(value)


def _timeout(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < _MIN_TIMEOUT_SECONDS:
        raise MalformedPaymentRequired(
            f"maxTimeoutSeconds must be a whole number of at least {_MIN_TIMEOUT_SECONDS}."
        )
    return value


def payment_header_value(offer: Offer, signature: str, authorization: dict[str, str]) -> str:
    """The value of PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1) carrying the signature."""
    exact = {"signature": signature, "authorization": authorization}
    if offer.x402_version == 2:
        payload: dict[str, Any] = {"x402Version": 2, "accepted": offer.requirement}
        if offer.resource is not None:
            payload["resource"] = offer.resource
        payload["payload"] = exact
    else:
        payload = {
            "x402Version": 1,
            "scheme": "exact",
            "network": offer.network.v1_name,
            "payload": exact,
        }
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True)
class Settlement:
    """A server's PAYMENT-RESPONSE / X-PAYMENT-RESPONSE, read."""

    success: bool
    transaction: str
    error_reason: str
    network: str
    payer: str


_TRANSACTION = re.compile(r"(0x[0-9a-fA-F]{1,128})?", re.ASCII)


def decode_settlement(value: Any) -> Settlement:
    """The settlement response header's value (base64 JSON), or its decoded object."""
    document = value if isinstance(value, dict) else None
    if isinstance(value, str) and len(value) <= MAX_PAYMENT_REQUIRED_BYTES:
        document = _json_or_base64_json(value.strip(), "payment_response")
    if not isinstance(document, dict) or not isinstance(document.get("success"), bool):
        raise MalformedPaymentRequired(
            "payment_response must be the PAYMENT-RESPONSE header value: base64 of a JSON "
            "object with a boolean success."
        )
    transaction = document.get("transaction") or ""
    if not isinstance(transaction, str) or not _TRANSACTION.fullmatch(transaction):
        raise MalformedPaymentRequired("transaction must be a 0x-prefixed hex hash.")
    if document["success"] and not transaction:
        raise MalformedPaymentRequired("A successful settlement names its transaction.")

    def text(name: str, limit: int) -> str:
        field = document.get(name) or ""
        return field[:limit] if isinstance(field, str) else ""

    return Settlement(
        success=document["success"],
        transaction=transaction,
        error_reason=text("errorReason", 200),
        network=text("network", 40),
        payer=text("payer", 42),
    )
