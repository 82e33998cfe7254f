"""A local HTTP server speaking Stripe's API wire format, for the `stripe` package.

It takes form-encoded requests (`spending_controls[spending_limits][0][amount]=…`),
answers JSON objects shaped as Stripe returns them and errors in Stripe's error shape,
honours Idempotency-Key, and keeps cardholders, cards, authorizations and transactions
for the lists reconciliation reads. It also plays the card network: `authorize`,
`capture`, `refund` and friends change its authorizations and transactions as Stripe
would and return the event Stripe would send, which `deliver` signs with Stripe's
scheme (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`) and posts.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "sk_test_agentwallet_fake"
WEBHOOK_SECRET = "whsec_agentwallet_fake"
API_VERSION = "2026-10-28.endive"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}{next(_ids):06d}"


def _luhn_complete(partial: str) -> str:
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return partial + str((10 - total % 10) % 10)


def form_decode(raw: str) -> dict[str, Any]:
    """Stripe's form encoding back into objects: `a[b][0][c]=1` → {"a": {"b": [{"c": "1"}]}}."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node: Any) -> Any:
        if isinstance(node, dict):
            if node and all(key.isdigit() for key in node):
                return [lists(node[key]) for key in sorted(node, key=int)]
            return {key: lists(value) for key, value in node.items()}
        return node

    return lists(root)


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str = "", param: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": "invalid_request_error" if self.status < 500 else "api_error",
            "message": str(self),
        }
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


@dataclass
class FakeStripe:
    server: ThreadingHTTPServer
    cardholders: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    fail_next: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def calls(self, method: str, path_prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                body
                for verb, path, body in self.requests
                if verb == method and path.startswith(path_prefix)
            ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- The API -------------------------------------------------------------------

    def handle(self, verb: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append((verb, path, params))
            if self.fail_next > 0:
                self.fail_next -= 1
                raise StripeError(500, "An unknown error occurred.")
            route = (verb, re.sub(r"/(ich|ic|iauth|ipi)_[A-Za-z0-9]+", "/{id}", path))
            found = re.search(r"/((?:ich|ic|iauth|ipi)_[A-Za-z0-9]+)", path)
            object_id = found.group(1) if found else ""
            if route == ("POST", "/v1/issuing/cardholders"):
                return self._cardholder_create(params)
            if route == ("POST", "/v1/issuing/cards"):
                return self._card_create(params)
            if route == ("GET", "/v1/issuing/cards/{id}"):
                card = self._get(self.cards, object_id)
                return self._card_view(card, expand=params.get("expand") or [])
            if route == ("POST", "/v1/issuing/cards/{id}"):
                return self._card_update(self._get(self.cards, object_id), params)
            if route == ("GET", "/v1/issuing/cards"):
                return self._list("/v1/issuing/cards", self.cards, params, self._card_view)
            if route == ("GET", "/v1/issuing/authorizations"):
                return self._list("/v1/issuing/authorizations", self.authorizations, params)
            if route == ("GET", "/v1/issuing/transactions/{id}"):
                return copy.deepcopy(self._get(self.transactions, object_id))
            if route == ("GET", "/v1/issuing/transactions"):
                return self._list("/v1/issuing/transactions", self.transactions, params)
            raise StripeError(404, f"Unrecognized request URL ({verb}: {path}).")

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], object_id: str) -> dict[str, Any]:
        if object_id not in store:
            raise StripeError(
                404, f"No such object: '{object_id}'", code="resource_missing", param="id"
            )
        return store[object_id]

    def _cardholder_create(self, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("name", "type"):
            if not params.get(name):
                raise StripeError(400, f"Missing required param: {name}.", param=name)
        address = (params.get("billing") or {}).get("address") or {}
        for part in ("line1", "city", "postal_code", "country"):
            if not address.get(part):
                raise StripeError(
                    400, f"Missing required param: billing[address][{part}].", param="billing"
                )
        if len(params["name"]) > 24:
            raise StripeError(400, "The name can be at most 24 characters.", param="name")
        holder = {
            "id": new_id("ich"),
            "object": "issuing.cardholder",
            "billing": {"address": address},
            "created": int(time.time()),
            "email": params.get("email"),
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "name": params["name"],
            "status": "active",
            "type": params["type"],
        }
        self.cardholders[holder["id"]] = holder
        return holder

    def _card_create(self, params: dict[str, Any]) -> dict[str, Any]:
        holder_id = params.get("cardholder", "")
        if holder_id not in self.cardholders:
            raise StripeError(
                400,
                f"No such cardholder: '{holder_id}'",
                code="resource_missing",
                param="cardholder",
            )
        if params.get("type") != "virtual":
            raise StripeError(400, "Only virtual cards here.", param="type")
        number = _luhn_complete("400009" + "".join(str(secrets.randbelow(10)) for _ in range(9)))
        card = {
            "id": new_id("ic"),
            "object": "issuing.card",
            "brand": "Visa",
            "cancellation_reason": None,
            "cardholder": self.cardholders[holder_id],
            "created": int(time.time()),
            "currency": params.get("currency", "usd"),
            "exp_month": 11,
            "exp_year": 2029,
            "last4": number[-4:],
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "status": params.get("status", "inactive"),
            "type": "virtual",
            "spending_controls": self._controls(params.get("spending_controls") or {}, params),
            "_number": number,
            "_cvc": f"{secrets.randbelow(1000):03d}",
        }
        self.cards[card["id"]] = card
        return self._card_view(card)

    @staticmethod
    def _controls(given: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        categories = given.get("allowed_categories") or None
        limits = [
            {"amount": int(limit["amount"]), "categories": None, "interval": limit["interval"]}
            for limit in (given.get("spending_limits") or [])
        ]
        return {
            "allowed_categories": categories,
            "allowed_merchant_countries": None,
            "blocked_categories": None,
            "blocked_merchant_countries": None,
            "spending_limits": limits,
            "spending_limits_currency": params.get("currency") if limits else None,
        }

    def _card_update(self, card: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if card["status"] == "canceled":
            raise StripeError(400, "This card has been canceled and cannot be updated.")
        if "status" in params:
            if params["status"] not in ("active", "inactive", "canceled"):
                raise StripeError(400, "Invalid status.", param="status")
            card["status"] = params["status"]
            if params["status"] == "canceled":
                card["cancellation_reason"] = params.get("cancellation_reason")
        if "spending_controls" in params:
            card["spending_controls"] = self._controls(
                params["spending_controls"], {"currency": card["currency"]}
            )
        return self._card_view(card)

    @staticmethod
    def _card_view(card: dict[str, Any], expand: list[str] | None = None) -> dict[str, Any]:
        view = {key: value for key, value in card.items() if not key.startswith("_")}
        expand = expand or []
        if "number" in expand:
            view["number"] = card["_number"]
        if "cvc" in expand:
            view["cvc"] = card["_cvc"]
        return copy.deepcopy(view)

    def _list(
        self,
        url: str,
        store: dict[str, dict[str, Any]],
        params: dict[str, Any],
        view: Any = copy.deepcopy,
    ) -> dict[str, Any]:
        created = params.get("created") or {}
        rows = sorted(store.values(), key=lambda row: (row["created"], row["id"]), reverse=True)
        if "gte" in created:
            rows = [row for row in rows if row["created"] >= int(created["gte"])]
        if "lt" in created:
            rows = [row for row in rows if row["created"] < int(created["lt"])]
        if after := params.get("starting_after"):
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit") or 10)
        return {
            "object": "list",
            "url": url,
            "has_more": len(rows) > limit,
            "data": [view(row) for row in rows[:limit]],
        }

    # --- The card network -------------------------------------------------------------

    def authorize(
        self,
        card_id: str,
        amount: int,
        *,
        currency: str = "usd",
        mcc: str = "5734",
        category: str = "computer_software_stores",
        merchant_name: str = "OPENAI",
        merchant_network_id: str = "1234567890",
        country: str = "US",
    ) -> dict[str, Any]:
        """A purchase on the card: a pending authorization, and the
        `issuing_authorization.request` event Stripe sends for it."""
        with self.lock:
            card = self.cards[card_id]
            auth = {
                "id": new_id("iauth"),
                "object": "issuing.authorization",
                "amount": 0,
                "amount_details": {"atm_fee": None, "cashback_amount": None},
                "approved": False,
                "authorization_method": "online",
                "balance_transactions": [],
                "card": self._card_view(card),
                "cardholder": card["cardholder"]["id"],
                "created": int(time.time()),
                "currency": card["currency"],
                "livemode": False,
                "merchant_amount": 0,
                "merchant_currency": currency,
                "merchant_data": {
                    "category": category,
                    "category_code": mcc,
                    "city": "San Francisco",
                    "country": country,
                    "name": merchant_name,
                    "network_id": merchant_network_id,
                    "postal_code": "94103",
                    "state": "CA",
                    "terminal_id": None,
                    "url": None,
                },
                "metadata": {},
                "network_data": {"transaction_id": secrets.token_hex(8)},
                "pending_request": {
                    "amount": amount,
                    "amount_details": {"atm_fee": None, "cashback_amount": None},
                    "currency": card["currency"],
                    "is_amount_controllable": False,
                    "merchant_amount": amount,
                    "merchant_currency": currency,
                    "network_risk_score": None,
                },
                "request_history": [],
                "status": "pending",
                "transactions": [],
                "verification_data": {"cvc_check": "match", "expiry_check": "match"},
                "wallet": None,
            }
            self.authorizations[auth["id"]] = auth
            return self.event("issuing_authorization.request", auth)

    def decided(self, auth_id: str, approved: bool, *, reason: str = "") -> dict[str, Any]:
        """Stripe applies the decision (ours, or its own: spending controls, a webhook
        that timed out) and sends `issuing_authorization.created`."""
        with self.lock:
            auth = self.authorizations[auth_id]
            pending = auth["pending_request"]
            auth["request_history"].append(
                {
                    "amount": pending["amount"],
                    "approved": approved,
                    "created": int(time.time()),
                    "currency": pending["currency"],
                    "merchant_amount": pending["merchant_amount"],
                    "merchant_currency": pending["merchant_currency"],
                    "reason": reason or ("webhook_approved" if approved else "webhook_declined"),
                    "reason_message": None,
                }
            )
            auth["approved"] = approved
            auth["pending_request"] = None
            if approved:
                auth["amount"] = pending["amount"]
                auth["merchant_amount"] = pending["merchant_amount"]
            else:
                auth["status"] = "closed"
            return self.event("issuing_authorization.created", auth)

    def reverse(self, auth_id: str, amount: int | None = None) -> dict[str, Any]:
        """The merchant gives back all (`reversed`) or part of the hold."""
        with self.lock:
            auth = self.authorizations[auth_id]
            before = {"amount": auth["amount"], "merchant_amount": auth["merchant_amount"]}
            left = 0 if amount is None else auth["merchant_amount"] - amount
            auth["amount"] = auth["merchant_amount"] = left
            if left == 0:
                before["status"] = auth["status"]
                auth["status"] = "reversed"
            return self.event("issuing_authorization.updated", auth, previous=before)

    def expire(self, auth_id: str) -> dict[str, Any]:
        with self.lock:
            auth = self.authorizations[auth_id]
            before = {"status": auth["status"]}
            auth["status"] = "expired"
            return self.event("issuing_authorization.updated", auth, previous=before)

    def increment(self, auth_id: str, amount: int) -> dict[str, Any]:
        """An increment Stripe approved on its own (a merchant's incremental authorization)."""
        with self.lock:
            auth = self.authorizations[auth_id]
            before = {"amount": auth["amount"], "merchant_amount": auth["merchant_amount"]}
            auth["amount"] += amount
            auth["merchant_amount"] += amount
            return self.event("issuing_authorization.updated", auth, previous=before)

    def capture(self, auth_id: str | None, amount: int, *, card_id: str = "") -> dict[str, Any]:
        """A capture (`amount` positive, recorded negative as Stripe does); without an
        authorization it is a force capture on `card_id`."""
        return self._transaction("capture", auth_id, -amount, card_id)

    def refund(self, auth_id: str | None, amount: int, *, card_id: str = "") -> dict[str, Any]:
        return self._transaction("refund", auth_id, amount, card_id)

    def _transaction(
        self, kind: str, auth_id: str | None, amount: int, card_id: str
    ) -> dict[str, Any]:
        with self.lock:
            auth = self.authorizations[auth_id] if auth_id else None
            card = self.cards[card_id or auth["card"]["id"]]  # type: ignore[index]
            currency = auth["merchant_currency"] if auth else "usd"
            txn = {
                "id": new_id("ipi"),
                "object": "issuing.transaction",
                "amount": amount,
                "amount_details": {"atm_fee": None, "cashback_amount": None},
                "authorization": auth_id,
                "balance_transaction": new_id("txn"),
                "card": card["id"],
                "cardholder": card["cardholder"]["id"],
                "created": int(time.time()),
                "currency": card["currency"],
                "dispute": None,
                "livemode": False,
                "merchant_amount": amount,
                "merchant_currency": currency,
                "merchant_data": auth["merchant_data"] if auth else {"name": "UNKNOWN"},
                "metadata": {},
                "type": kind,
                "wallet": None,
            }
            self.transactions[txn["id"]] = txn
            if auth is not None and kind == "capture":
                auth["transactions"].append(copy.deepcopy(txn))
                auth["status"] = "closed"
            return self.event("issuing_transaction.created", txn)

    @staticmethod
    def event(
        kind: str, obj: dict[str, Any], *, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        return {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }


def signature_header(
    body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> str:
    """Stripe's `Stripe-Signature`: `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def deliver(client: Any, event: dict[str, Any], **signing: Any) -> Any:
    """Post the event to /webhooks/stripe as Stripe does (Django test client or an
    httpx client with a base URL)."""
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": signature_header(body, **signing)}
    if hasattr(client, "generic"):  # Django's test client
        return client.generic(
            "POST",
            "/webhooks/stripe",
            body,
            content_type="application/json; charset=utf-8",
            HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            HTTP_ACCEPT="application/json",
        )
    return client.post(
        "/webhooks/stripe",
        content=body,
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )


def start_fake_stripe() -> FakeStripe:
    fake: FakeStripe

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, verb: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if verb == "POST" else url.query
            try:
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    raise StripeError(401, "Invalid API Key provided.")
                params = form_decode(raw)
                key = self.headers.get("Idempotency-Key") if verb == "POST" else None
                with fake.lock:
                    if key and key in fake.idempotent:
                        status, answer = fake.idempotent[key]
                    else:
                        status, answer = 200, fake.handle(verb, url.path, params)
                        if key:
                            fake.idempotent[key] = (status, answer)
            except StripeError as error:
                status, answer = error.status, error.body()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", new_id("req"))
            self.send_header("Stripe-Version", API_VERSION)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeStripe(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
