"""Fuzzing of the whole OpenAPI schema (schemathesis), in-process through Django's stack.

Every operation the schema documents gets generated requests (schemathesis's examples,
coverage and fuzzing phases), once with a staff key and once with an agent key; every
answer must be no server error and be what the schema says: a documented status code
and content type, and a body and headers that match.

So that requests reach the code behind the 404s and 400s, path parameters and body
fields are often real: ids of agents, cards, approvals, traces and authorizations made
below, vendor and policy slugs, money in the policy's currency, a merchant the card
accepts. The card network's endpoints are signed per request in the staff run and keep
the generated (wrong) signature header in the agent run.

Bounded and reproducible: MAX_EXAMPLES per operation in the fuzzing phase, a fixed seed
(derandomized without it), no example database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.test.client import ClientHandler
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals.models import ApprovalScope
from approvals.services import approval_deny, approval_request_ask
from cards.models import Card
from conftest import SignedNetwork, card_for, merchant_of
from ledger.network import SIGNATURE_HEADER
from wallets.actors import Actor
from wallets.services import ProvisionedAgent, api_key_create

MAX_EXAMPLES = 100  # per operation and run, in the fuzzing phase: about 80 s in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class TestTransactionWSGI:
    """The app as a WSGI callable: Django's test-client handler (the stock middleware,
    CSRF enforced as in production), which, unlike the production handler, leaves the
    test's database connection and transaction open between requests."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.handler = ClientHandler(enforce_csrf_checks=True)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        response = self.handler(environ)
        headers = [*response.items()]
        headers += [
            ("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()
        ]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        if response.streaming:  # the ledger export: the body as WSGI would send it
            return list(response.streaming_content)
        return [response.content]


@dataclass
class World:
    """Real objects, whose ids and values the fuzzer sends next to the ones it makes up."""

    staff_key: str
    alice: ProvisionedAgent
    network: SignedNetwork  # signs as the card network does
    path_values: dict[str, list[Any]]
    body_values: dict[str, list[Any]]


def _money(amount: str, currency: str = "USD") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def _merchant(card: Card) -> dict[str, str]:
    """A merchant the card accepts, as the network describes it."""
    accepted = merchant_of(card)
    return {
        "name": accepted["merchant_name"],
        "network_id": accepted["merchant_network_id"],
        "mcc": card.allowed_mccs[0],
        "country": "US",
    }


@pytest.fixture
def world(alice, bob, network: SignedNetwork, fx_rates) -> World:
    _, staff_key = api_key_create(name="fuzz-staff", agent=None, created_by=Actor.system("test"))
    aws = card_for(alice, "aws")
    approved = network.authorize(aws, "12.50", network_id="auth_fuzz_1", trace_id="PR-7").json()
    network.capture("auth_fuzz_1", "12.50", id="cap_fuzz_1")
    network.authorize(aws, "3.00", network_id="auth_fuzz_2", trace_id="PR-8")
    declined = network.authorize(aws, "490.00", network_id="auth_fuzz_3").json()
    asked = approval_request_ask(
        agent=alice.agent, scope=ApprovalScope.MONTHLY, amount=Decimal("50.00"), reason="ahead"
    )
    denied = approval_deny(request=asked, actor_label="staff-key:fuzz")  # monthly is free again
    assert approved["decision"] == "approved"
    assert declined["approval_id"] is not None  # over the daily cap: a pending approval
    cards = [new.card for new in (*alice.cards, *bob.cards)]
    card_ids = [str(card.pk) for card in cards]
    network_ids = ["auth_fuzz_1", "auth_fuzz_2", "auth_fuzz_3"]
    money = [_money("12.50"), _money("0.01"), _money("2000.00")]  # the policy's currency
    vendors = [card.vendor.slug for card in cards]
    return World(
        staff_key=staff_key,
        alice=alice,
        network=network,
        path_values={
            "agent_id": [str(alice.agent.pk), str(bob.agent.pk)],
            "card_id": card_ids,
            "approval_id": [declined["approval_id"], denied.pk],
            "slug": ["starter"],
            "trace_id": ["PR-7", "PR-8"],
            "network_id": network_ids,
        },
        body_values={
            # Taken ids (a replay or a 409) and fresh ones (taken once used: a replay after).
            "id": [*network_ids, "cap_fuzz_1", "evt_fuzz_1", "evt_fuzz_2", "evt_fuzz_3"],
            "card_id": card_ids,
            "authorization_id": network_ids,
            "merchant": [_merchant(card) for card in cards],
            "amount": [*money, _money("3.00", "EUR")],
            "monthly_cap": money,
            "daily_cap": money,
            "per_trace_cap": money,
            "per_authorization_cap": money,
            "x402_per_call_cap": money,
            "vendor": vendors,
            "vendors": [vendors[:1], vendors[:2]],
            "default_vendors": [vendors[:1], vendors[:2]],
            "vendor_caps": [[{"vendor": vendors[0], "monthly_cap": _money("100.00")}]],
            "policy": ["starter"],
            "currency": ["USD", "EUR"],
            "time_zone": ["UTC", "Europe/Berlin", "Pacific/Kiritimati"],
            "trace_id": ["PR-7", "PR-9"],
            "scope": list(ApprovalScope.values),
        },
    )


def _often_real(value: Any, real: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """The generated object as it is, or with every known key given a real value."""
    if not isinstance(value, dict) or not real.keys() & value.keys():
        return st.just(value)
    return st.one_of(
        st.just(value),
        st.fixed_dictionaries(
            {
                key: st.sampled_from(real[key]) if key in real else st.just(item)
                for key, item in value.items()
            }
        ),
    )


schema = schemathesis.openapi.from_wsgi("/api/schema/", TestTransactionWSGI())
schema.config.seed = 20251010  # each operation's Hypothesis seed is derived from it
_worlds: list[World] = []  # the running test's world, for the generation hooks below


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    return _often_real(path_parameters, _worlds[-1].path_values)


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    return _often_real(body, _worlds[-1].body_values)


@pytest.fixture(params=["staff", "agent"])
def fuzz_as(request: pytest.FixtureRequest, world: World) -> Iterator[str]:
    _worlds.append(world)
    yield request.param
    _worlds.pop()


def _raw_body(body: Any) -> bytes:
    """The bytes to send (and sign): the generated JSON, or raw bytes as generated."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def _credentials(case: Case, *, fuzz_as: str, world: World) -> dict[str, Any]:
    """How the request is sent: a bearer key; for the network, signed by the staff run
    (the body sent as the bytes signed) and left as generated by the agent run."""
    if not case.path.startswith("/api/network/"):
        key = world.staff_key if fuzz_as == "staff" else world.alice.raw_key
        return {"headers": {"Authorization": f"Bearer {key}"}}
    if fuzz_as != "staff":
        return {}
    body = _raw_body(case.body)
    return {"data": body, "headers": {SIGNATURE_HEADER: world.network.signature(body)}}


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_answer_is_documented_and_no_server_error(
    case: Case, fuzz_as: str, world: World
) -> None:
    response = case.call(**_credentials(case, fuzz_as=fuzz_as, world=world))
    case.validate_response(response, checks=CHECKS)


def test_the_fuzzers_keys_and_signatures_are_accepted(world: World) -> None:
    """Else every fuzzed request could be a (documented) 401, and the test above pass."""
    for fuzz_as in ("staff", "agent"):
        case = schema["/api/agents"]["GET"].Case()
        response = case.call(**_credentials(case, fuzz_as=fuzz_as, world=world))
        assert response.status_code == 200, response.text
    card = card_for(world.alice, "openai")
    case = schema["/api/network/authorizations"]["POST"].Case(
        body={
            "id": "auth_fuzz_check",
            "card_id": str(card.pk),
            "amount": _money("1.00"),
            "merchant": _merchant(card),
        },
        media_type="application/json",
    )
    response = case.call(**_credentials(case, fuzz_as="staff", world=world))
    assert response.json()["decision"] == "approved", response.text
    assert case.call(**_credentials(case, fuzz_as="agent", world=world)).status_code == 401


def test_every_error_answer_is_documented_in_the_error_shape() -> None:
    error = {"$ref": "#/components/schemas/Error"}
    assert schema.raw_schema["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "401"} <= responses.keys(), (method, path)
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error, code
