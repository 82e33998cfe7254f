"""Load the 22 curated vendors and the starter policy."""

import json
from decimal import Decimal
from pathlib import Path

from django.db import migrations

CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "curated_vendors.json"

STARTER_DEFAULT_VENDORS = ["openai", "anthropic", "aws", "vercel", "github", "snowflake"]
STARTER_VENDOR_CAPS = {"openai": Decimal("2000"), "anthropic": Decimal("2000"),
                       "aws": Decimal("5000")}


def load(apps, schema_editor):
    Vendor = apps.get_model("policies", "Vendor")
    Policy = apps.get_model("policies", "Policy")
    PolicyVendorCap = apps.get_model("policies", "PolicyVendorCap")

    vendors = json.loads(CATALOGUE.read_text())["vendors"]
    by_slug = {}
    for item in vendors:
        vendor, _ = Vendor.objects.update_or_create(
            slug=item["slug"],
            defaults={
                "name": item["name"], "category": item["category"], "mccs": item["mccs"],
                "descriptors": item["descriptors"], "network_ids": item["network_ids"],
                "currencies": item["currencies"], "is_curated": True,
            },
        )
        by_slug[vendor.slug] = vendor

    policy, _ = Policy.objects.update_or_create(
        slug="starter",
        defaults={
            "name": "Starter",
            "description": "Daily (rolling 24h) $500, monthly $10,000, per-PR $20, "
                           "OpenAI and Anthropic $2,000/month each, AWS $5,000/month, "
                           "x402 up to $5 per call.",
            "currency": "USD",
            "daily_cap": Decimal("500"), "daily_cap_currency": "USD",
            "monthly_cap": Decimal("10000"), "monthly_cap_currency": "USD",
            "per_trace_cap": Decimal("20"), "per_trace_cap_currency": "USD",
            "x402_allowed": True,
            "x402_per_call_cap": Decimal("5"), "x402_per_call_cap_currency": "USD",
            "time_zone": "UTC",
        },
    )
    policy.default_vendors.set([by_slug[slug] for slug in STARTER_DEFAULT_VENDORS])
    for slug, amount in STARTER_VENDOR_CAPS.items():
        PolicyVendorCap.objects.update_or_create(
            policy=policy, vendor=by_slug[slug],
            defaults={"monthly_cap": amount, "monthly_cap_currency": "USD"})


def unload(apps, schema_editor):
    apps.get_model("policies", "Policy").objects.filter(slug="starter").delete()
    apps.get_model("policies", "Vendor").objects.filter(is_curated=True).delete()


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
