"""The authorization endpoint's lean path: the plain view, msgspec decoding, the bare
WSGI handler. Each must answer exactly as the documented (DRF) contract says."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import msgspec
from django.urls import resolve
from rest_framework.test import APIRequestFactory

from agentwallet import wsgi
from conftest import card_for
from ledger import apis
from ledger.models import Authorization
from ledger.serializers import (
    NetworkAuthorizationIn,
    NetworkAuthorizationInputSerializer,
    NetworkDecisionOutputSerializer,
    decision_body,
)
from ledger.services import AuthorizationRequest, Decided, authorization_decide

PATH = "/api/network/authorizations"


def payload(card: Any, network_id: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "id": network_id,
        "card_id": str(card.pk),
        "amount": {"amount": amount, "currency": "USD"},
        "merchant": {"name": "Shop", "mcc": card.allowed_mccs[0], "country": "US"},
        **extra,
    }


def call_wsgi(
    network: Any, body: bytes, *, method: str = "POST", host: str = "testserver", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Through agentwallet.wsgi.application, as gunicorn calls it."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": PATH,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AGENTWALLET_SIGNATURE": network.signature(body),
        **headers,
    }
    started: list[Any] = []
    chunks = wsgi.application(environ, lambda status, headers: started.append((status, headers)))
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    status, header_list = started[0]
    return int(status.split()[0]), dict(header_list), content


def test_the_route_and_the_bare_handler_serve_the_same_view():
    assert resolve(PATH).func is apis.network_authorization_create
    assert {PATH: apis.network_authorization_create} == wsgi.BARE_VIEWS


def test_the_bare_wsgi_path_decides_and_keeps_security_headers(
    transactional_db, django_db_serialized_rollback, alice, network
):
    # Transactional: the handler's request signals close connections left in a transaction.
    body = json.dumps(payload(card_for(alice, "openai"), "bare_1")).encode()
    status, headers, content = call_wsgi(network, body)
    assert status == 200, content
    answer = json.loads(content)
    assert (answer["decision"], answer["id"]) == ("approved", "bare_1")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert headers["Content-Length"] == str(len(content))  # not chunked
    assert Authorization.objects.get(network_id="bare_1").decision == "approved"


def test_the_bare_wsgi_path_refuses_what_the_full_stack_refuses(
    transactional_db, django_db_serialized_rollback, alice, network
):
    body = json.dumps(payload(card_for(alice, "openai"), "bare_2")).encode()
    assert call_wsgi(network, body, host="evil.example")[0] == 400  # ALLOWED_HOSTS
    status, headers, _ = call_wsgi(network, body, HTTP_AGENTWALLET_SIGNATURE="t=1,v1=00")
    assert (status, headers["WWW-Authenticate"]) == (401, "AgentWallet-Signature")
    status, headers, content = call_wsgi(network, b"", method="GET")
    assert (status, headers["Allow"]) == (405, "POST")
    assert json.loads(content)["error"]["code"] == "method_not_allowed"
    status, _, content = call_wsgi(network, body, CONTENT_TYPE="text/plain")
    assert (status, json.loads(content)["error"]["code"]) == (415, "unsupported_media_type")
    assert not Authorization.objects.exists()


def test_the_drf_class_answers_the_same_when_routed(alice, network):
    """The class that documents the route delegates to the view (if ever routed)."""
    body = json.dumps(payload(card_for(alice, "openai"), "class_1")).encode()
    request = APIRequestFactory().post(
        PATH,
        data=body,
        content_type="application/json",
        HTTP_AGENTWALLET_SIGNATURE=network.signature(body),
    )
    response = apis.NetworkAuthorizationCreateApi.as_view()(request)
    assert response.status_code == 200
    assert json.loads(response.content)["decision"] == "approved"


def test_the_decoder_and_the_documented_serializer_name_the_same_fields():
    def struct_fields(struct: Any) -> dict[str, Any]:
        info = msgspec.inspect.type_info(struct)
        return {
            field.name: (
                field.required,
                struct_fields(field.type.cls)
                if isinstance(field.type, msgspec.inspect.StructType)
                else None,
            )
            for field in info.fields
        }

    def serializer_fields(serializer: Any) -> dict[str, Any]:
        return {
            name: (
                field.required,
                serializer_fields(field) if hasattr(field, "fields") else None,
            )
            for name, field in serializer.fields.items()
        }

    documented = serializer_fields(NetworkAuthorizationInputSerializer())
    # MoneyField documents {amount, currency} as one object; the struct spells it out.
    documented["amount"] = (True, {"amount": (True, None), "currency": (True, None)})
    assert struct_fields(NetworkAuthorizationIn) == documented


def test_decision_body_renders_what_the_documented_serializer_renders(alice, network):
    card = card_for(alice, "openai")
    requests = [
        AuthorizationRequest(
            network_id="render_ok",
            card_id=str(card.pk),
            amount=10,
            currency="USD",
            merchant_mcc=card.allowed_mccs[0],
            trace_id="PR-1",
        ),
        # over the daily cap: a cap decline carries the cap and an approval request
        AuthorizationRequest(
            network_id="render_cap",
            card_id=str(card.pk),
            amount=900,
            currency="USD",
            merchant_mcc=card.allowed_mccs[0],
        ),
        AuthorizationRequest(
            network_id="render_mcc",
            card_id=str(card.pk),
            amount=1,
            currency="USD",
            merchant_mcc="0001",
        ),
    ]
    reasons = set()
    for request in requests:
        for _ in range(2):  # the first decision, then its replay
            outcome = authorization_decide(request=request)
            auth = outcome.authorization
            documented = NetworkDecisionOutputSerializer(
                {
                    "id": auth.network_id,
                    "decision": auth.decision,
                    "reason": auth.reason,
                    "authorization_id": auth.pk,
                    "cap_amount": auth.cap_amount,
                    "fx_rate": auth.fx_rate,
                    "fx_rate_date": auth.fx_rate_date,
                    "trace_id": auth.trace_id,
                    "cap": {
                        "scope": auth.cap_scope,
                        "limit": auth.cap_limit,
                        "remaining": auth.cap_remaining,
                    }
                    if auth.cap_scope
                    else None,
                    "approval_id": auth.approval_request_id,
                    "replayed": outcome.replayed,
                }
            ).data
            body = decision_body(outcome.decided, replayed=outcome.replayed)
            assert json.loads(json.dumps(body)) == json.loads(json.dumps(documented))
            assert outcome.decided == Decided.of(auth)
            reasons.add(auth.reason)
    assert reasons == {"", "daily_cap_exceeded", "mcc_not_allowed"}
