"""The sandbox card network: send charges through the same signed endpoint a processor uses.

    python manage.py network authorize --card CARD_ID --amount 12.50 --currency EUR \\
        --merchant "HETZNER ONLINE GMBH" --mcc 4816 [--trace PR-1]
    python manage.py network capture --authorization AUTHORIZATION_ID --amount 12.50 --currency EUR
    python manage.py network reverse --authorization AUTHORIZATION_ID [--amount 5.00 --currency EUR]
    python manage.py network refund --card CARD_ID --amount 5.00 [--authorization AUTHORIZATION_ID]

AUTHORIZATION_ID is the `authorization_id` an authorize printed (the network's id, as
`--id` sets it). Every event gets a fresh random id unless `--id` gives one: send the
same command with the same `--id` again to see it applied once.

By default it posts over HTTP to --url (a running server); --in-process sends the same
signed request through Django's test client instead, for when no server runs.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.test import Client

from cards.models import Card
from ledger.network import SIGNATURE_HEADER, sign


def _money(options: dict[str, Any]) -> dict[str, str]:
    return {"amount": options["amount"], "currency": options["currency"].upper()}


def _vendor_merchant(card_id: str) -> tuple[str, str]:
    """How the card's vendor appears on the network (its first statement descriptor and
    verified merchant id), so that a sandbox charge passes the merchant lock; a made-up
    merchant when the card is not in this database (a remote --url)."""
    try:
        card = Card.objects.select_related("vendor").get(pk=uuid.UUID(card_id))
    except (ValueError, Card.DoesNotExist, DatabaseError):
        return "Sandbox merchant", ""
    vendor = card.vendor
    return (vendor.descriptors or [vendor.name])[0], (vendor.network_ids or ["sandbox-1"])[0]


class Command(BaseCommand):
    help = "Act as the card network: authorize, capture, reverse or refund a charge."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Base URL of a running AgentWallet."
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Send through Django's test client, not over HTTP.",
        )
        actions = parser.add_subparsers(dest="action", required=True)

        authorize = actions.add_parser("authorize", help="Ask for a decision.")
        authorize.add_argument("--card", required=True)
        authorize.add_argument("--amount", required=True)
        authorize.add_argument("--currency", default="USD")
        authorize.add_argument(
            "--merchant",
            default="",
            help="Merchant name (default: the card vendor's first "
            "statement descriptor, when the card is in this database).",
        )
        authorize.add_argument("--mcc", required=True)
        authorize.add_argument(
            "--merchant-id",
            default=None,
            help="Merchant network id (default: the vendor's "
            "first verified id, when the card is in this database).",
        )
        authorize.add_argument("--country", default="US")
        authorize.add_argument("--trace", default="")
        authorize.add_argument("--id", default="", help="Network id (default: random).")

        capture = actions.add_parser("capture", help="Clear an authorization.")
        capture.add_argument("--authorization", required=True)
        capture.add_argument("--amount", required=True)
        capture.add_argument("--currency", default="USD")
        capture.add_argument("--card", default="", help="For a capture we never authorized.")
        capture.add_argument("--id", default="", help="Transaction id (default: random).")

        reverse = actions.add_parser("reverse", help="Release all or part of a hold.")
        reverse.add_argument("--authorization", required=True)
        reverse.add_argument("--amount", default="")
        reverse.add_argument("--currency", default="USD")
        reverse.add_argument("--id", default="", help="Event id (default: random).")

        refund = actions.add_parser("refund", help="Money back from the merchant.")
        refund.add_argument("--card", required=True)
        refund.add_argument("--amount", required=True)
        refund.add_argument("--currency", default="USD")
        refund.add_argument("--authorization", default="")
        refund.add_argument("--id", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "authorize":
            path = "/api/network/authorizations"
            name, merchant_id = _vendor_merchant(options["card"])
            payload: dict[str, Any] = {
                "id": options["id"] or f"sbx_auth_{secrets.token_hex(8)}",
                "card_id": options["card"],
                "amount": _money(options),
                "merchant": {
                    "name": options["merchant"] or name,
                    "mcc": options["mcc"],
                    "network_id": merchant_id
                    if options["merchant_id"] is None
                    else options["merchant_id"],
                    "country": options["country"].upper(),
                },
            }
            if options["trace"]:
                payload["trace_id"] = options["trace"]
        elif action == "capture":
            path = f"/api/network/authorizations/{options['authorization']}/capture"
            payload = {
                "amount": _money(options),
                "id": options["id"] or f"sbx_txn_{secrets.token_hex(8)}",
            }
            if options["card"]:
                payload["card_id"] = options["card"]
        elif action == "reverse":
            path = f"/api/network/authorizations/{options['authorization']}/reverse"
            payload = {"id": options["id"] or f"sbx_rev_{secrets.token_hex(8)}"}
            if options["amount"]:
                payload["amount"] = _money(options)
        else:
            path = "/api/network/refunds"
            payload = {
                "id": options["id"] or f"sbx_refund_{secrets.token_hex(8)}",
                "card_id": options["card"],
                "amount": _money(options),
            }
            if options["authorization"]:
                payload["authorization_id"] = options["authorization"]

        status, body = self.send(path, payload, options)
        self.stdout.write(json.dumps(body, indent=2))
        if status >= 400:
            raise CommandError(f"The network endpoint answered {status}.")

    def send(self, path: str, payload: dict[str, Any], options: dict[str, Any]) -> tuple[int, Any]:
        secret = settings.AGENTWALLET_NETWORK_SECRET
        if not secret:
            raise CommandError("Set AGENTWALLET_NETWORK_SECRET to sign network requests.")
        raw = json.dumps(payload).encode()
        header = sign(raw, secret=secret)
        if options["in_process"]:
            response = Client().post(
                path, data=raw, content_type="application/json", headers={SIGNATURE_HEADER: header}
            )
            return response.status_code, response.json()
        request = urllib.request.Request(  # noqa: S310 (the operator's own server)
            options["url"].rstrip("/") + path,
            data=raw,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except urllib.error.URLError as exc:
            raise CommandError(f"Cannot reach {options['url']}: {exc.reason}") from exc
