from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from policies.models import Policy, Vendor

DESIGN_VENDORS = {
    "aws",
    "gcp",
    "azure",
    "hetzner",
    "ovh",
    "vercel",
    "render",
    "flyio",
    "openai",
    "anthropic",
    "google-ai",
    "replicate",
    "modal",
    "github",
    "gitlab",
    "bitbucket",
    "sentry",
    "datadog",
    "pagerduty",
    "snowflake",
    "stripe",
    "twilio",
}


def test_the_curated_catalogue_holds_the_22_vendors(db):
    curated = Vendor.objects.filter(is_curated=True)
    assert set(curated.values_list("slug", flat=True)) == DESIGN_VENDORS
    for vendor in curated:
        assert vendor.mccs, vendor.slug
        assert all(len(mcc) == 4 and mcc.isdigit() for mcc in vendor.mccs)
        assert vendor.descriptors, vendor.slug
        assert vendor.currencies, vendor.slug


def test_the_catalogue_matches_the_shipped_data_file(db):
    shipped = json.loads(
        (Path(__file__).resolve().parents[1] / "data" / "curated_vendors.json").read_text()
    )["vendors"]
    hetzner = next(item for item in shipped if item["slug"] == "hetzner")
    vendor = Vendor.objects.get(slug="hetzner")
    assert vendor.mccs == hetzner["mccs"]
    assert vendor.network_ids == hetzner["network_ids"]
    assert vendor.currencies[0] == "EUR"


def test_the_starter_policy_is_as_designed(db):
    policy = Policy.objects.get(slug="starter")
    assert policy.currency == "USD"
    assert policy.daily_cap.amount == Decimal("500")
    assert policy.monthly_cap.amount == Decimal("10000")
    assert policy.per_trace_cap.amount == Decimal("20")
    assert policy.x402_allowed
    assert policy.x402_per_call_cap.amount == Decimal("5")
    assert set(policy.default_vendors.values_list("slug", flat=True)) == {
        "openai",
        "anthropic",
        "aws",
        "vercel",
        "github",
        "snowflake",
    }
    caps = {cap.vendor.slug: cap.monthly_cap.amount for cap in policy.vendor_caps.all()}
    assert caps == {"openai": Decimal("2000"), "anthropic": Decimal("2000"), "aws": Decimal("5000")}
