"""The portal's policy and vendor pages: every policy, one policy with its edit form
(parsed by the API's PATCH serializer, written by policy_update), the vendor catalogue
with Add vendor; permissions on the server, refused values change nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentwallet.models import AuditEvent
from agentwallet.tests.test_portal import signed_in, user_with
from conftest import card_for
from policies.models import Policy, PolicyChange, PolicyVendorCap, Vendor
from policies.services import policy_create, vendor_create
from wallets.actors import Actor
from wallets.models import TeamLead

HTMX = {"HX-Request": "true"}


def superuser() -> User:
    user = user_with(None, "root")
    User.objects.filter(pk=user.pk).update(is_superuser=True)
    return user


def as_role(role: str) -> Client:
    if role == "superuser":
        return signed_in(superuser())
    return signed_in(user_with(role, role.split()[0].lower()))


def queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def form_data(policy: Policy, **overrides: Any) -> dict[str, Any]:
    """The edit form as the page posts it, with the policy's current values."""

    def amount(money: Any) -> str:
        return "" if money is None else f"{money.amount:.2f}"

    caps = list(policy.vendor_caps.select_related("vendor").order_by("vendor__name"))
    data: dict[str, Any] = {
        "name": policy.name,
        "description": policy.description,
        "daily_cap": amount(policy.daily_cap),
        "monthly_cap": amount(policy.monthly_cap),
        "per_trace_cap": amount(policy.per_trace_cap),
        "per_authorization_cap": amount(policy.per_authorization_cap),
        "velocity_per_hour": policy.velocity_per_hour or "",
        "x402_per_call_cap": amount(policy.x402_per_call_cap),
        "unverified_charge_limit": amount(policy.unverified_charge_limit),
        "time_zone": policy.time_zone,
        "warning_thresholds": ", ".join(map(str, policy.warning_thresholds)),
        "approvals_channel": policy.approvals_channel,
        "bump_valid_hours": policy.bump_valid_hours or "",
        "runaway": policy.runaway,
        "default_vendors": list(policy.default_vendors.values_list("slug", flat=True)),
        "cap_rows": str(len(caps) + 1),
    }
    if policy.x402_allowed:
        data["x402_allowed"] = "1"
    for index, cap in enumerate(caps):
        data[f"cap-{index}-vendor"] = cap.vendor.slug
        data[f"cap-{index}-amount"] = amount(cap.monthly_cap)
    data |= {f"cap-{len(caps)}-vendor": "", f"cap-{len(caps)}-amount": ""}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def snapshot(slug: str = "starter") -> tuple:
    """Everything a save could change, and the history rows it would write."""
    policy = Policy.objects.get(slug=slug)
    row = tuple(
        getattr(policy, name)
        for name in (
            "name",
            "description",
            "daily_cap",
            "monthly_cap",
            "per_trace_cap",
            "per_authorization_cap",
            "velocity_per_hour",
            "x402_allowed",
            "x402_per_call_cap",
            "time_zone",
            "warning_thresholds",
            "approvals_channel",
            "bump_valid_hours",
            "updated_at",
        )
    )
    vendors = tuple(sorted(policy.default_vendors.values_list("slug", flat=True)))
    caps = tuple(
        sorted(
            PolicyVendorCap.objects.filter(policy=policy).values_list("vendor__slug", "monthly_cap")
        )
    )
    return row, vendors, caps, PolicyChange.objects.count(), AuditEvent.objects.count()


def another_policy(slug: str, **kwargs: Any) -> Policy:
    kwargs.setdefault("daily_cap", Decimal("100"))
    kwargs.setdefault("monthly_cap", Decimal("1000"))
    return policy_create(slug=slug, name=slug.title(), currency="USD", **kwargs)


# The list of policies -------------------------------------------------------------------


def test_the_list_shows_every_policy_with_its_caps_and_agents(alice, bob):
    another_policy("eu", per_authorization_cap=Decimal("25"), velocity_per_hour=30)
    client = as_role("Viewer")
    page = client.get("/policies/").content.decode()
    assert "<h1>Policies</h1>" in page
    assert 'href="/policies/starter/"' in page
    assert 'href="/policies/eu/"' in page
    for figure in ("500.00 USD", "10000.00 USD", "20.00 USD", "25.00 USD", "up to 5.00 USD"):
        assert figure in page
    assert '<td class="num">2</td>' in page  # alice and bob on Starter
    assert '<td class="num">0</td>' in page
    assert "New policy" not in page  # a viewer may not add one
    fragment = client.get("/policies/", headers=HTMX).content.decode()
    assert "<html" not in fragment
    assert 'data-testid="policy-table"' in fragment


def test_a_lead_sees_every_policy_but_counts_only_their_teams_agents(alice, bob):
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    page = signed_in(lead).get("/policies/").content.decode()
    assert 'href="/policies/starter/"' in page
    assert '<td class="num">1</td>' in page
    assert "those of the teams you lead" in page


def test_the_list_costs_the_same_queries_for_2_or_10_policies(alice):
    client = as_role("Finance")
    another_policy("p1")
    assert queries(client, "/policies/") == 6  # session, user, roles, 2 permissions, policies
    for n in range(2, 10):
        another_policy(f"p{n}")
    assert Policy.objects.count() == 10
    assert queries(client, "/policies/") == 6


def test_finance_creates_a_policy_and_refused_values_create_nothing(db):
    client = as_role("Finance")
    assert "New policy" in client.get("/policies/").content.decode()
    good = {
        "slug": "ci-bots",
        "name": "CI bots",
        "currency": "eur",
        "daily_cap": "50",
        "monthly_cap": "900.50",
    }
    before = (Policy.objects.count(), AuditEvent.objects.count())
    for bad, message in (
        ({"daily_cap": "1000"}, "cannot exceed the monthly cap"),
        ({"slug": "starter"}, "already exists"),
        ({"monthly_cap": "-5"}, "decimal string"),
        ({"currency": "XYZ"}, "Unknown currency"),
    ):
        response = client.post("/policies/", good | bad, headers=HTMX)
        assert response.status_code == 200
        assert message in response.content.decode()
        assert "nothing was created" in response.content.decode()
        assert (Policy.objects.count(), AuditEvent.objects.count()) == before
    assert client.post("/policies/", good | {"daily_cap": "x"}).status_code == 400
    created = client.post("/policies/", good, headers=HTMX)
    assert created.status_code == 200
    assert created["HX-Redirect"] == "/policies/ci-bots/"
    policy = Policy.objects.get(slug="ci-bots")
    assert (policy.currency, policy.monthly_cap.amount) == ("EUR", Decimal("900.50"))
    event = AuditEvent.objects.get(action="policy.created")
    assert event.actor == "user:finance"


@pytest.mark.parametrize("role", ["Viewer", "Engineering lead"])
def test_without_the_permission_creating_a_policy_is_refused(db, role):
    client = as_role(role)
    assert "New policy" not in client.get("/policies/").content.decode()
    forged = {"slug": "x", "name": "X", "currency": "USD", "daily_cap": "1", "monthly_cap": "2"}
    assert client.post("/policies/", forged).status_code == 403
    assert not Policy.objects.filter(slug="x").exists()


# One policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/policies/", "/policies/starter/", "/vendors/"])
def test_every_page_needs_a_signed_in_user(db, path):
    for response in (Client().get(path), Client().post(path, {"name": "x"})):
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_a_user_without_a_role_is_refused(db):
    client = signed_in(user_with(None))
    assert client.get("/policies/starter/").status_code == 403
    assert client.get("/vendors/").status_code == 403


def test_an_unknown_policy_answers_404(db):
    assert as_role("Finance").get("/policies/nope/").status_code == 404


def test_a_viewer_sees_the_values_agents_and_history_read_only(alice, starter_policy):
    starter = starter_policy
    from policies.services import policy_update

    policy_update(
        policy=starter, changes={"daily_cap": Decimal("600")}, actor=Actor.system("someone")
    )
    client = as_role("Viewer")
    page = client.get("/policies/starter/").content.decode()
    assert "<h1>Starter</h1>" in page
    assert 'data-testid="value-daily_cap">600.00 USD' in page
    assert 'data-testid="value-monthly_cap">10000.00 USD' in page
    assert 'data-testid="value-per_authorization_cap">none' in page
    assert 'data-testid="value-warning_thresholds">80%, 95%' in page
    assert "OpenAI 2000.00 USD" in page
    assert f'href="/agents/{alice.agent.pk}/"' in page
    assert "<td>someone</td>" in page
    assert "500.00 USD</span> → <strong>600.00 USD" in page
    assert ">Save</button>" not in page
    assert '<form class="pform"' not in page
    assert "read-only" in page


def test_finance_sees_the_form_with_the_current_values(alice):
    page = as_role("Finance").get("/policies/starter/").content.decode()
    assert ">Save</button>" in page
    assert 'name="daily_cap" value="500.00"' in page
    assert 'name="x402_allowed" value="1" checked' in page
    assert 'name="default_vendors" value="openai" checked' in page
    assert 'name="default_vendors" value="azure" >' in page
    assert '<option value="aws" selected>' in page
    assert 'name="time_zone" value="UTC"' in page


def test_the_agents_pager_is_an_htmx_fragment(provision):
    for n in range(27):
        provision(name=f"a{n:02d}", email=f"a{n}@example.com")
    client = as_role("Viewer")
    page = client.get("/policies/starter/").content.decode()
    assert "Page 1 of 2" in page
    assert ">a24<" in page
    assert ">a25<" not in page
    fragment = client.get("/policies/starter/?page=2", headers=HTMX)
    body = fragment.content.decode()
    assert "<html" not in body
    assert ">a25<" in body
    assert ">a00<" not in body
    assert "Change history" not in body
    assert "HX-Request" in fragment["Vary"]


def test_a_lead_sees_the_policy_with_their_teams_agents_only(alice, bob):
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    page = client.get("/policies/starter/").content.decode()
    assert "alice-agent" in page
    assert "bob-agent" not in page
    assert "1 agent of your teams use it" in page
    assert ">Save</button>" not in page


def test_the_policy_page_costs_the_same_queries_for_1_or_30_agents(provision):
    provision(name="a00", email="a0@example.com")
    viewer, finance = as_role("Viewer"), as_role("Finance")
    # Session, user, roles, permissions; the policy with its vendors and caps, its
    # history, the agents' count and page; Finance also reads the catalogue for the form.
    assert (queries(viewer, "/policies/starter/"), queries(finance, "/policies/starter/")) == (
        12,
        13,
    )
    for n in range(1, 30):
        provision(name=f"a{n:02d}", email=f"a{n}@example.com")
    assert (queries(viewer, "/policies/starter/"), queries(finance, "/policies/starter/")) == (
        12,
        13,
    )


@pytest.mark.parametrize("role", ["Viewer", "Engineering lead"])
def test_a_forged_save_without_the_permission_is_403_and_changes_nothing(
    alice, starter_policy, role
):
    before = snapshot()
    client = as_role(role)
    response = client.post("/policies/starter/", form_data(starter_policy, daily_cap="1.00"))
    assert response.status_code == 403
    htmx = client.post(
        "/policies/starter/", form_data(starter_policy, daily_cap="1.00"), headers=HTMX
    )
    assert htmx.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("role", ["Finance", "superuser"])
def test_finance_and_superusers_save(db, starter_policy, role):
    client = as_role(role)
    response = client.post(
        "/policies/starter/", form_data(starter_policy, daily_cap="650"), headers=HTMX
    )
    assert response.status_code == 200
    assert Policy.objects.get(slug="starter").daily_cap.amount == Decimal("650.00")


BAD_VALUES = [
    ({"daily_cap": "-5"}, "daily_cap", "decimal string such as"),
    ({"daily_cap": "12.505"}, "daily_cap", "at most 2 decimal places"),
    ({"daily_cap": "1e3"}, "daily_cap", "decimal string such as"),
    ({"daily_cap": "0"}, "daily_cap", "greater than zero"),
    ({"daily_cap": ""}, "daily_cap", "decimal string such as"),
    ({"daily_cap": "20000"}, "daily_cap", "cannot exceed the monthly cap"),
    ({"monthly_cap": "100.00"}, "daily_cap", "cannot exceed the monthly cap"),
    ({"per_trace_cap": "abc"}, "per_trace_cap", "decimal string such as"),
    ({"per_authorization_cap": "-1"}, "per_authorization_cap", "decimal string"),
    ({"x402_per_call_cap": ""}, "x402_per_call_cap", "Needed when x402 is allowed"),
    ({"time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone"),
    ({"time_zone": ""}, "time_zone", "may not be blank"),
    ({"warning_thresholds": "0, 150"}, "warning_thresholds", "“0”: Ensure this value is greater"),
    ({"warning_thresholds": "80, ninety"}, "warning_thresholds", "“ninety”: A valid integer"),
    ({"velocity_per_hour": "0"}, "velocity_per_hour", "greater than or equal to 1"),
    ({"velocity_per_hour": "1.5"}, "velocity_per_hour", "A valid integer"),
    ({"bump_valid_hours": "10000"}, "bump_valid_hours", "less than or equal to 744"),
    ({"approvals_channel": "#general"}, "approvals_channel", "does not match"),
    ({"name": ""}, "name", "may not be blank"),
    ({"cap-0-amount": "-1"}, "cap-0", "decimal string"),
    ({"cap-3-amount": "100"}, "cap-3", "Choose a vendor."),
    ({"cap-3-vendor": "aws", "cap-3-amount": "100"}, "vendor_caps", "Each vendor may appear once"),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_VALUES)
def test_a_refused_value_is_shown_beside_its_field_and_nothing_changes(
    alice, starter_policy, changes, field, message
):
    client = as_role("Finance")
    before = snapshot()
    data = form_data(starter_policy, **({"description": "A good change too."} | changes))
    response = client.post("/policies/starter/", data, headers=HTMX)
    assert response.status_code == 200  # htmx swaps no 4xx
    body = response.content.decode()
    assert "<html" not in body
    assert "nothing was saved" in body
    error = body.split(f'data-testid="error-{field}">', 1)[1].split("</p>", 1)[0]
    assert message in error
    assert snapshot() == before
    # What was typed stays in the form.
    if "daily_cap" in changes:
        assert f'name="daily_cap" value="{changes["daily_cap"]}"' in body
    plain = client.post("/policies/starter/", data)
    assert plain.status_code == 400  # a plain post: the whole page, as /agents/new/
    assert "<html" in plain.content.decode()
    assert snapshot() == before


def test_a_save_records_each_change_and_one_audit_row(alice, starter_policy):
    client = as_role("Finance")
    data = form_data(
        starter_policy,
        name="Starter plus",
        daily_cap="750",
        per_trace_cap="",
        per_authorization_cap="99.99",
        warning_thresholds="50 90",
        time_zone="Europe/Paris",
        approvals_channel="C0FINANCE",
        bump_valid_hours="4",
        default_vendors=["openai", "azure"],
        # Remove AWS (the first row, by name) and add Azure in the blank row.
        **{"cap-0-remove": "1", "cap-3-vendor": "azure", "cap-3-amount": "300"},
    )
    response = client.post("/policies/starter/", data, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="policy-saved">Saved:' in body
    assert 'name="daily_cap" value="750.00"' in body  # the updated values
    assert 'id="policy-history" hx-swap-oob="true"' in body  # the history, out of band
    assert "500.00 USD</span> → <strong>750.00 USD" in body
    policy = Policy.objects.get(slug="starter")
    assert policy.name == "Starter plus"
    assert policy.daily_cap.amount == Decimal("750.00")
    assert policy.per_trace_cap is None
    assert policy.per_authorization_cap.amount == Decimal("99.99")
    assert (policy.warning_thresholds, policy.time_zone) == ([50, 90], "Europe/Paris")
    assert (policy.approvals_channel, policy.bump_valid_hours) == ("C0FINANCE", 4)
    assert set(policy.default_vendors.values_list("slug", flat=True)) == {"openai", "azure"}
    caps = dict(
        PolicyVendorCap.objects.filter(policy=policy).values_list("vendor__slug", "monthly_cap")
    )
    assert caps == {
        "azure": Decimal("300.00"),
        "anthropic": Decimal("2000.00"),
        "openai": Decimal("2000.00"),
    }
    changes = {change.field: change for change in PolicyChange.objects.filter(policy=policy)}
    assert set(changes) == {
        "name",
        "daily_cap",
        "per_trace_cap",
        "per_authorization_cap",
        "warning_thresholds",
        "time_zone",
        "approvals_channel",
        "bump_valid_hours",
        "default_vendors",
        "vendor_caps",
    }
    assert {change.actor for change in changes.values()} == {"user:finance"}
    assert changes["daily_cap"].new_value == {"amount": "750.00", "currency": "USD"}
    event = AuditEvent.objects.get(action="policy.changed")  # one row for the save
    assert (event.action, event.actor, event.object_id) == (
        "policy.changed",
        "user:finance",
        "starter",
    )
    assert event.detail["daily_cap"] == {
        "from": {"amount": "500.00", "currency": "USD"},
        "to": {"amount": "750.00", "currency": "USD"},
    }


def test_saving_the_same_values_records_nothing(alice, starter_policy):
    response = as_role("Finance").post(
        "/policies/starter/", form_data(starter_policy), headers=HTMX
    )
    assert "Saved: nothing changed." in response.content.decode()
    assert not PolicyChange.objects.exists()
    assert not AuditEvent.objects.filter(action="policy.changed").exists()


def test_a_plain_save_redirects_with_a_message(alice, starter_policy):
    client = as_role("Finance")
    response = client.post("/policies/starter/", form_data(starter_policy, daily_cap="450"))
    assert response.status_code == 302
    assert response["Location"] == "/policies/starter/"
    page = client.get("/policies/starter/").content.decode()
    assert "Saved: daily cap." in page
    assert 'name="daily_cap" value="450.00"' in page


def test_switching_x402_off_and_clearing_its_cap_saves(alice, starter_policy):
    data = form_data(starter_policy, x402_per_call_cap="")
    del data["x402_allowed"]
    as_role("Finance").post("/policies/starter/", data, headers=HTMX)
    policy = Policy.objects.get(slug="starter")
    assert (policy.x402_allowed, policy.x402_per_call_cap) == (False, None)


def test_a_lower_daily_cap_declines_the_next_authorization(alice, starter_policy, network):
    card = card_for(alice, "aws")
    assert network.authorize(card, "120.00").json()["decision"] == "approved"
    assert network.authorize(card, "5.00").json()["decision"] == "approved"
    client = as_role("Finance")
    response = client.post(
        "/policies/starter/", form_data(starter_policy, daily_cap="125.00"), headers=HTMX
    )
    assert "Saved: daily cap." in response.content.decode()
    declined = network.authorize(card, "5.00").json()
    assert (declined["decision"], declined["reason"]) == ("declined", "daily_cap_exceeded")


# Vendors --------------------------------------------------------------------------------


def test_the_vendors_page_lists_the_catalogue_and_custom_vendors(db):
    vendor_create(slug="neon", name="Neon", mccs=["5734"], descriptors=["NEON INC"])
    client = as_role("Viewer")
    page = client.get("/vendors/").content.decode()
    assert "<h1>Vendors</h1>" in page
    assert "Amazon Web Services (AWS)" in page
    assert "185119000762203" in page  # a verified merchant id
    assert "<code>AMAZON WEB SERVICES</code>" in page
    assert "4816, 7399, 7372" in page
    assert "USD, EUR, GBP" in page
    assert 'Neon</strong> <span class="badge warn">custom</span>' in page
    assert "OpenAI</strong> <span" not in page  # curated: no badge
    assert "23 vendors" in page
    assert "Add vendor" not in page  # a viewer may not


def test_the_vendor_search_is_an_htmx_fragment(db):
    vendor_create(slug="neon", name="Neon", mccs=["5734"], network_ids=["998877"])
    client = as_role("Viewer")

    def found(query: str) -> str:
        response = client.get(f"/vendors/?{query}", headers=HTMX)
        body = response.content.decode()
        assert "<html" not in body
        return body

    assert "Neon" in found("q=neon")
    assert "Amazon" not in found("q=neon")
    assert "GitHub" in found("q=github%2C+inc")  # a descriptor, case-insensitive
    assert "Neon" in found("q=998877")  # a merchant id
    by_mcc = found("q=4816")
    assert "Amazon Web Services" in by_mcc
    assert "Neon" not in by_mcc
    custom = found("kind=custom")
    assert "Neon" in custom
    assert "Amazon" not in custom
    assert "Neon" not in found("kind=curated")
    assert "No vendor matches" in found("q=zzzz")


def test_the_vendors_page_costs_the_same_queries_with_20_more_vendors(db):
    client = as_role("Finance")
    # Session, user, roles, 2 permissions, the count and the page.
    assert queries(client, "/vendors/") == 7
    for n in range(20):
        vendor_create(slug=f"v{n}", name=f"Vendor {n}", mccs=["5734"])
    assert queries(client, "/vendors/") == 7
    assert queries(client, "/vendors/?q=vendor") == 7
    assert "42 vendors" in client.get("/vendors/").content.decode()


@pytest.mark.parametrize("role", ["Finance", "superuser"])
def test_finance_adds_a_vendor(db, role):
    client = as_role(role)
    assert "Add vendor" in client.get("/vendors/").content.decode()
    response = client.post(
        "/vendors/",
        {
            "slug": "neon",
            "name": "Neon",
            "category": "data",
            "mccs": "5734, 7372 5734",
            "descriptors": "NEON INC\r\nNEON, TECH\r\n",
            "network_ids": "111 222",
            "currencies": "usd eur",
            "merchant_id_lock": "1",
        },
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/vendors/?q=neon"
    vendor = Vendor.objects.get(slug="neon")
    assert (vendor.category, vendor.mccs) == ("data", ["5734", "7372"])
    assert vendor.descriptors == ["NEON INC", "NEON, TECH"]
    assert (vendor.network_ids, vendor.currencies) == (["111", "222"], ["USD", "EUR"])
    assert (vendor.descriptor_lock, vendor.merchant_id_lock, vendor.is_curated) == (
        False,
        True,
        False,
    )
    event = AuditEvent.objects.get(action="vendor.created")
    assert event.actor.startswith("user:")
    page = client.get("/vendors/?q=neon").content.decode()
    assert "Added the vendor Neon (neon)." in page


VENDOR = {"slug": "neon", "name": "Neon", "category": "data", "mccs": "5734"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"slug": "aws"}, "slug", "already exists"),
        ({"slug": "not a slug"}, "slug", "valid"),
        ({"mccs": "12a4"}, "mccs", "“12a4”: An MCC is 4 digits."),
        ({"mccs": "57345"}, "mccs", "“57345”"),
        ({"mccs": ""}, "mccs", "at least one merchant category code"),
        ({"name": ""}, "name", "may not be blank"),
        ({"currencies": "dollars"}, "currencies", "“DOLLARS”"),
    ],
)
def test_a_refused_vendor_is_shown_beside_its_field_and_nothing_is_added(
    db, changes, field, message
):
    client = as_role("Finance")
    before = (Vendor.objects.count(), AuditEvent.objects.count())
    response = client.post("/vendors/", VENDOR | changes, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "nothing was added" in body
    error = body.split(f'data-testid="error-{field}">', 1)[1].split("</p>", 1)[0]
    assert message in error
    assert f'name="slug" value="{(VENDOR | changes)["slug"]}"' in body  # kept as typed
    assert client.post("/vendors/", VENDOR | changes).status_code == 400
    assert (Vendor.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("role", ["Viewer", "Engineering lead"])
def test_without_the_permission_adding_a_vendor_is_refused(db, role):
    client = as_role(role)
    assert client.post("/vendors/", VENDOR).status_code == 403
    assert client.post("/vendors/", VENDOR, headers=HTMX).status_code == 403
    assert not Vendor.objects.filter(slug="neon").exists()


def test_the_runaway_action_is_a_select_that_saves_and_refuses_a_made_up_value(
    alice, starter_policy
):
    client = as_role("Finance")
    page = client.get("/policies/starter/").content.decode()
    assert '<select id="id_runaway" name="runaway"' in page
    assert '<option value="notify" selected>Tell Slack</option>' in page
    response = client.post(
        "/policies/starter/", form_data(starter_policy, runaway="freeze"), headers=HTMX
    )
    assert response.status_code == 200
    assert Policy.objects.get(slug="starter").runaway == "freeze"
    assert PolicyChange.objects.filter(field="runaway", new_value="freeze").exists()
    refused = client.post(
        "/policies/starter/", form_data(starter_policy, runaway="explode"), headers=HTMX
    )
    assert refused.status_code == 200  # htmx swaps no 4xx
    assert 'data-testid="error-runaway"' in refused.content.decode()
    assert Policy.objects.get(slug="starter").runaway == "freeze"
