"""Every write endpoint: bad input gets a 4xx JSON error and writes nothing."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from rest_framework.exceptions import ValidationError

OUR_APPS = ("wallets", "cards", "policies", "ledger", "approvals")


def row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for app in OUR_APPS
        for model in apps.get_app_config(app).get_models()
    }


def money(amount, currency="USD"):
    return {"amount": amount, "currency": currency}


GOOD_PROVISION = {"name": "new-agent", "principal_email": "new@example.com", "policy": "starter"}
GOOD_POLICY = {
    "slug": "p2",
    "name": "P2",
    "currency": "USD",
    "daily_cap": money("10"),
    "monthly_cap": money("100"),
}
GOOD_VENDOR = {"slug": "acme-ai", "name": "Acme AI", "mccs": ["5734"]}

BAD_BODIES = {
    "provision": (
        "post",
        "/api/agents",
        [
            {},
            {**GOOD_PROVISION, "name": ""},
            {**GOOD_PROVISION, "name": 12},
            {**GOOD_PROVISION, "name": "x" * 101},
            {**GOOD_PROVISION, "principal_email": "not-an-email"},
            {**GOOD_PROVISION, "policy": "no-such-policy"},
            {**GOOD_PROVISION, "vendors": ["openai", "no-such-vendor"]},
            {**GOOD_PROVISION, "vendors": "openai"},
            {**GOOD_PROVISION, "vendors": ["openai", "openai"]},
            {**GOOD_PROVISION, "principal_slack_user_id": "not a slack id"},
            {**GOOD_PROVISION, "extra_field": 1},
            [GOOD_PROVISION],
        ],
    ),
    "card": (
        "post",
        "/api/agents/{agent}/cards",
        [
            {},
            {"vendor": "no-such-vendor", "trace_id": "PR-1"},
            {"vendor": 7},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("-5")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("0")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("1" * 30)},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("1.001")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("NaN")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("1e400")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("ten")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("10", "XYZ")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("10", "usdollar")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money("10", "EUR")},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": "10.00"},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": {"amount": "10"}},
            {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money(True)},
            {"vendor": "hetzner", "trace_id": "bad trace id with spaces"},
            {"vendor": "hetzner", "expires_in_seconds": -1},
            {"vendor": "hetzner", "expires_in_seconds": "soon"},
            {"vendor": "openai"},  # a second standing OpenAI card: 409
        ],
    ),
    "card_freeze": (
        "post",
        "/api/agents/{agent}/cards/{card}/freeze",
        [
            {},
            {"reason": ""},
            {"reason": "   "},
            {"reason": 5},
            {"reason": "x" * 501},
        ],
    ),
    "agent_freeze": (
        "post",
        "/api/agents/{agent}/freeze",
        [
            {},
            {"reason": ""},
            {"reason": ["a"]},
        ],
    ),
    "card_unfreeze": (
        "post",
        "/api/agents/{agent}/cards/{card}/unfreeze",
        [
            {"reason": 5},
            {"nope": 1},
        ],
    ),
    "trace": (
        "put",
        "/api/agents/{agent}/trace",
        [
            {},
            {"trace_id": ""},
            {"trace_id": "has space"},
            {"trace_id": "x" * 129},
            {"trace_id": "PR-1", "ttl_seconds": 0},
            {"trace_id": "PR-1", "ttl_seconds": 10**12},
            {"trace_id": "PR-1", "ttl_seconds": "1h"},
        ],
    ),
    "policy_create": (
        "post",
        "/api/policies",
        [
            {},
            {**GOOD_POLICY, "slug": "starter"},
            {**GOOD_POLICY, "daily_cap": money("-1")},
            {**GOOD_POLICY, "daily_cap": money("0")},
            {**GOOD_POLICY, "daily_cap": money("1" * 30)},
            {**GOOD_POLICY, "daily_cap": money("10", "EUR")},
            {**GOOD_POLICY, "daily_cap": money("1000")},  # above the monthly cap
            {
                **GOOD_POLICY,
                "currency": "XYZ",
                "daily_cap": money("10", "XYZ"),
                "monthly_cap": money("100", "XYZ"),
            },
            {**GOOD_POLICY, "time_zone": "Mars/Olympus"},
            {**GOOD_POLICY, "x402_allowed": True},  # no per-call cap
            {**GOOD_POLICY, "default_vendors": ["nope"]},
            {
                **GOOD_POLICY,
                "vendor_caps": [{"vendor": "openai", "monthly_cap": money("5", "EUR")}],
            },
            {
                **GOOD_POLICY,
                "vendor_caps": [
                    {"vendor": "openai", "monthly_cap": money("5")},
                    {"vendor": "openai", "monthly_cap": money("6")},
                ],
            },
            {**GOOD_POLICY, "velocity_per_hour": 0},
        ],
    ),
    "policy_update": (
        "patch",
        "/api/policies/starter",
        [
            {},
            {"currency": "EUR"},
            {"slug": "renamed"},
            {"daily_cap": money("-1")},
            {"daily_cap": money("20000")},
            {"monthly_cap": money("5", "EUR")},
            {"time_zone": "Nowhere/Land"},
            {"x402_per_call_cap": None},
        ],
    ),
    "vendor_create": (
        "post",
        "/api/vendors",
        [
            {},
            {**GOOD_VENDOR, "slug": "openai"},
            {**GOOD_VENDOR, "mccs": []},
            {**GOOD_VENDOR, "mccs": ["57"]},
            {**GOOD_VENDOR, "mccs": "5734"},
            {**GOOD_VENDOR, "slug": "has space"},
            {**GOOD_VENDOR, "category": "snacks"},
            {**GOOD_VENDOR, "currencies": ["usd"]},
        ],
    ),
}

CASES = [
    (name, method, path, body)
    for name, (method, path, bodies) in BAD_BODIES.items()
    for body in bodies
]


def _path(template, provisioned):
    return template.format(agent=provisioned.agent.pk, card=provisioned.cards[0].card.pk)


@pytest.mark.parametrize(
    ("name", "method", "template", "body"),
    CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)],
)
def test_bad_body_is_refused_and_writes_nothing(alice, staff_client, name, method, template, body):
    before = row_counts()
    response = getattr(staff_client, method)(_path(template, alice), body, format="json")

    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["message"]
    assert row_counts() == before


WRITE_ENDPOINTS = sorted({(method, path) for method, path, _ in BAD_BODIES.values()})


@pytest.mark.parametrize(("method", "template"), WRITE_ENDPOINTS)
def test_malformed_json_is_refused(alice, staff_client, method, template):
    before = row_counts()
    response = getattr(staff_client, method)(
        _path(template, alice), data='{"name": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert row_counts() == before


@pytest.mark.parametrize(("method", "template"), WRITE_ENDPOINTS)
def test_oversized_body_is_refused(alice, staff_client, method, template):
    before = row_counts()
    body = json.dumps({"name": "x", "padding": "y" * 100_000})
    response = getattr(staff_client, method)(
        _path(template, alice), data=body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert row_counts() == before


@pytest.mark.parametrize(("method", "template"), WRITE_ENDPOINTS)
def test_non_json_content_type_is_refused(alice, staff_client, method, template):
    before = row_counts()
    response = getattr(staff_client, method)(
        _path(template, alice), data="name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert row_counts() == before


def test_unknown_api_path_answers_json_404(staff_client):
    response = staff_client.get("/api/agents/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


HOSTILE_BODIES = {
    # About 1,000 levels: validating it would exhaust Python's stack (RecursionError).
    "nested": "[" * 1000 + "]" * 1000,
    "nested-object": '{"name": ' + '{"a": ' * 1000 + "1" + "}" * 1001,
    # PostgreSQL cannot store NUL in text; the lone surrogate cannot be encoded back.
    "nul": json.dumps({"name": "a\x00b", "slug": "x\x00", "reason": "\x00", "vendor": "\x00"}),
    "surrogate": '{"name": "\\ud800", "category": "\\ud800", "reason": "\\udfff"}',
    "surrogate-key": '{"\\ud800": 1}',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
@pytest.mark.parametrize(("method", "template"), WRITE_ENDPOINTS)
def test_hostile_json_gets_a_json_400_and_writes_nothing(
    alice, staff_client, method, template, kind
):
    before = row_counts()
    response = getattr(staff_client, method)(
        _path(template, alice), data=HOSTILE_BODIES[kind], content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "parse_error"
    assert row_counts() == before


@pytest.mark.parametrize(
    "amount",
    [
        "1_000",
        "\uff11\uff12",
        " 12.50 ",
        "12.50\n",
        "12.500",
        "+12",
        "1e3",
        "0x10",
        "١٢",
        12,
        "12.",
    ],
)
def test_money_is_an_ascii_decimal_string_with_the_currencys_places(alice, staff_client, amount):
    before = row_counts()
    response = staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "hetzner", "trace_id": "PR-1", "monthly_cap": money(amount)},
        format="json",
    )
    assert response.status_code == 400, (amount, response.content)
    assert "monthly_cap" in response.json()["error"]["fields"]
    assert row_counts() == before


def test_money_accepts_the_plain_forms(alice, staff_client):
    for amount in ("12", "12.5", "12.50", "0012.50"):
        response = staff_client.post(
            f"/api/agents/{alice.agent.pk}/cards",
            {"vendor": "hetzner", "expires_in_seconds": 600, "monthly_cap": money(amount)},
            format="json",
        )
        assert response.status_code == 201, (amount, response.content)
        assert (
            response.json()["card"]["monthly_cap"]["amount"] == "12.50"
            if "." in amount
            else "12.00"
        )


@pytest.mark.parametrize(
    "value", ["1_000", "\uff11\uff12", " 12 ", "12\n", 12.0, "12.0", True, "1e3"]
)
def test_integers_are_integers(alice, staff_client, value):
    before = row_counts()
    trace = staff_client.put(
        f"/api/agents/{alice.agent.pk}/trace",
        {"trace_id": "PR-1", "ttl_seconds": value},
        format="json",
    )
    assert trace.status_code == 400, (value, trace.content)
    policy = staff_client.patch(
        "/api/policies/starter", {"velocity_per_hour": value}, format="json"
    )
    assert policy.status_code == 400, (value, policy.content)
    assert row_counts() == before
    ok = staff_client.put(
        f"/api/agents/{alice.agent.pk}/trace",
        {"trace_id": "PR-1", "ttl_seconds": 600},
        format="json",
    )
    assert ok.status_code == 200


def test_a_trailing_newline_is_not_part_of_an_id(alice, staff_client):
    """Python's `$` matches before a final newline; what is stored never holds one."""
    response = staff_client.put(
        f"/api/agents/{alice.agent.pk}/trace", {"trace_id": "PR-1\n"}, format="json"
    )
    assert response.json()["trace"]["trace_id"] == "PR-1"
    from agentwallet.api.fields import StrictRegexField

    field = StrictRegexField(r"^[A-Z]+$", trim_whitespace=False)
    with pytest.raises(ValidationError):
        field.run_validation("PR\n")
    assert field.run_validation("PR") == "PR"


@pytest.mark.parametrize(
    "path", ["/api/traces/%00", "/api/ledger?trace_id=%00", "/api/ledger?vendor=a%00b"]
)
def test_nul_in_the_url_gets_a_json_400(staff_client, path):
    response = staff_client.get(path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_paths_answer_json_also_in_debug(staff_client, settings, debug):
    settings.DEBUG = debug
    for path in ("/api/nope", "/api/agents/x/y/z", "/api/network/nothing"):
        response = staff_client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/api/agents", "/api/network/authorizations", "/slack/interactivity"]
)
def test_a_disallowed_host_answers_json(staff_client, settings, debug, path):
    settings.DEBUG = debug
    response = staff_client.post(path, {}, format="json", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "disallowed_host"
