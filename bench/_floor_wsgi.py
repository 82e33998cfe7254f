"""The stack's floor, for bench/authorize.py: the product's WSGI entry point (gunicorn,
Django's bare handler, SecurityMiddleware, signals) serving POST
/api/network/authorizations with a view that does only what any correct authorization
must: read the body, lock the card's agent row, commit, answer. No signature, rules,
spend or ledger. What this reaches is the most the product could reach on the machine.
"""

from __future__ import annotations

import json

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from agentwallet import wsgi

LOCK = (
    "SELECT a.id FROM cards_card c JOIN wallets_agent a ON a.id = c.agent_id "
    "WHERE c.id = %s FOR UPDATE OF a"
)


def floor_view(request: HttpRequest) -> HttpResponse:
    card_id = json.loads(request.body)["card_id"]
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(LOCK, [card_id])
        cursor.fetchone()
    return HttpResponse(b'{"decision":"approved"}', content_type="application/json")


wsgi.BARE_VIEWS["/api/network/authorizations"] = floor_view
application = wsgi.application
