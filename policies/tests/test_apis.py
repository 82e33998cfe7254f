from __future__ import annotations

from decimal import Decimal

from policies.models import Policy, PolicyChange, Vendor


def money(amount, currency="USD"):
    return {"amount": amount, "currency": currency}


def test_adding_a_vendor_is_one_call(staff_client, alice_client):
    response = staff_client.post(
        "/api/vendors",
        {
            "slug": "acme-llm",
            "name": "Acme LLM",
            "category": "llm",
            "mccs": ["5734", "7372"],
            "descriptors": ["ACME LLM"],
            "currencies": ["USD"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    vendor = Vendor.objects.get(slug="acme-llm")
    assert vendor.mccs == ["5734", "7372"]
    assert not vendor.is_curated
    # ... and agents can get a card for it right away.
    listed = {v["slug"] for v in alice_client.get("/api/vendors").json()}
    assert "acme-llm" in listed


def test_vendor_list_is_readable_by_agents(alice_client):
    response = alice_client.get("/api/vendors")
    assert response.status_code == 200
    assert len(response.json()) == 22


def test_creating_a_policy_in_euros(staff_client):
    response = staff_client.post(
        "/api/policies",
        {
            "slug": "eu",
            "name": "EU",
            "currency": "EUR",
            "time_zone": "Europe/Berlin",
            "daily_cap": money("100", "EUR"),
            "monthly_cap": money("1000.50", "EUR"),
            "per_trace_cap": money("25", "EUR"),
            "velocity_per_hour": 20,
            "default_vendors": ["hetzner", "ovh"],
            "vendor_caps": [{"vendor": "hetzner", "monthly_cap": money("600", "EUR")}],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["monthly_cap"] == {"amount": "1000.50", "currency": "EUR"}
    assert body["default_vendors"] == ["hetzner", "ovh"]
    assert body["vendor_caps"] == [
        {"vendor": "hetzner", "monthly_cap": {"amount": "600.00", "currency": "EUR"}}
    ]
    policy = Policy.objects.get(slug="eu")
    assert policy.monthly_cap.amount == Decimal("1000.50")
    assert str(policy.monthly_cap.currency) == "EUR"


def test_patching_a_policy_changes_only_what_is_given(staff_client):
    response = staff_client.patch(
        "/api/policies/starter",
        {
            "daily_cap": money("750"),
            "per_trace_cap": None,
            "vendor_caps": [{"vendor": "openai", "monthly_cap": money("3000")}],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    policy = Policy.objects.get(slug="starter")
    assert policy.daily_cap.amount == Decimal("750")
    assert policy.per_trace_cap is None
    assert policy.monthly_cap.amount == Decimal("10000")
    assert {c.vendor.slug: c.monthly_cap.amount for c in policy.vendor_caps.all()} == {
        "openai": Decimal("3000")
    }


def test_unknown_policy_answers_404(staff_client):
    assert staff_client.get("/api/policies/nope").status_code == 404
    assert staff_client.patch("/api/policies/nope", {"name": "x"}, format="json").status_code == 404


def test_policy_list_query_count_is_fixed(staff_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        assert staff_client.get("/api/policies").status_code == 200


def test_policy_approval_settings_round_trip(staff_client):
    response = staff_client.patch(
        "/api/policies/starter",
        {"warning_thresholds": [50, 90], "approvals_channel": "C0FINANCE", "bump_valid_hours": 4},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["warning_thresholds"], body["approvals_channel"], body["bump_valid_hours"]) == (
        [50, 90],
        "C0FINANCE",
        4,
    )
    bad = staff_client.patch(
        "/api/policies/starter", {"warning_thresholds": [0, 150]}, format="json"
    )
    assert bad.status_code == 400


def test_a_policy_change_is_recorded_with_who_and_from_what_to_what(staff_client):
    response = staff_client.patch(
        "/api/policies/starter",
        {
            "daily_cap": money("750"),
            "monthly_cap": money("10000"),  # the same value: no change to record
            "per_trace_cap": None,
            "vendor_caps": [{"vendor": "openai", "monthly_cap": money("3000")}],
            "time_zone": "Europe/Paris",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    changes = {
        change.field: (change.actor, change.old_value, change.new_value)
        for change in PolicyChange.objects.filter(policy__slug="starter")
    }
    assert set(changes) == {"daily_cap", "per_trace_cap", "vendor_caps", "time_zone"}
    actor = changes["daily_cap"][0]
    assert actor.startswith("staff-key:")
    assert changes["daily_cap"][1:] == (money("500.00"), money("750.00"))
    assert changes["per_trace_cap"][1:] == (money("20.00"), None)
    assert changes["vendor_caps"][1:] == (
        {"anthropic": "2000.00", "aws": "5000.00", "openai": "2000.00"},
        {"openai": "3000.00"},
    )
    assert changes["time_zone"][1:] == ("UTC", "Europe/Paris")


def test_a_refused_policy_change_records_nothing(staff_client):
    response = staff_client.patch(
        "/api/policies/starter", {"daily_cap": money("20000")}, format="json"
    )
    assert response.status_code == 400
    assert not PolicyChange.objects.exists()


def test_a_policy_change_in_the_admin_goes_through_the_service(admin_client, starter_policy):
    url = f"/admin/policies/policy/{starter_policy.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in ("default_vendors",)
    }
    data.update(
        {
            "daily_cap_0": "600.00",
            "daily_cap_1": "USD",
            "monthly_cap_0": "10000.00",
            "monthly_cap_1": "USD",
            "per_trace_cap_0": "20.00",
            "per_trace_cap_1": "USD",
            "per_authorization_cap_0": "",
            "per_authorization_cap_1": "USD",
            "x402_per_call_cap_0": "5.00",
            "x402_per_call_cap_1": "USD",
            "unverified_charge_limit_0": "25.00",
            "unverified_charge_limit_1": "USD",
            "warning_thresholds": "[80, 95]",
            "default_vendors": [v.pk for v in starter_policy.default_vendors.all()],
            "vendor_caps-TOTAL_FORMS": "3",
            "vendor_caps-INITIAL_FORMS": "3",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        }
    )
    for index, cap in enumerate(starter_policy.vendor_caps.order_by("vendor__name")):
        data[f"vendor_caps-{index}-id"] = cap.pk
        data[f"vendor_caps-{index}-policy"] = starter_policy.pk
    data = {key: value for key, value in data.items() if value is not None}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    change = PolicyChange.objects.get(policy=starter_policy)
    assert (change.field, change.actor) == ("daily_cap", "user:admin")
    assert change.new_value == money("600.00")
    assert Policy.objects.get(pk=starter_policy.pk).daily_cap.amount == Decimal("600")


def test_x402_payees_and_vendor_pay_to_are_set_checksummed(staff_client):
    lower = "0x209693bc6afc0c5328ba36faf03c514ef312287c"
    patched = staff_client.patch(
        "/api/policies/starter", {"x402_payees": [lower, lower]}, format="json"
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["x402_payees"] == ["0x209693Bc6afc0C5328bA36FaF03C514EF312287C"]
    bad = staff_client.patch("/api/policies/starter", {"x402_payees": ["0x12"]}, format="json")
    assert bad.status_code == 400
    vendor = staff_client.post(
        "/api/vendors",
        {"slug": "search-api", "name": "Search API", "mccs": ["7372"], "x402_pay_to": [lower]},
        format="json",
    )
    assert vendor.status_code == 201, vendor.json()
    assert vendor.json()["x402_pay_to"] == ["0x209693Bc6afc0C5328bA36FaF03C514EF312287C"]
