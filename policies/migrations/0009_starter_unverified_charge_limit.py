"""The starter policy holds an unverified principal's agents to charges of $25 each, so
that a new agent cannot spend much before the person accountable for it has answered
the mail (wallets.verification). A policy already given a limit keeps it."""

from decimal import Decimal

from django.db import migrations

STARTER_UNVERIFIED_CHARGE_LIMIT = Decimal("25.00")


def limit_set(apps, schema_editor):
    apps.get_model("policies", "Policy").objects.filter(
        slug="starter", currency="USD", unverified_charge_limit__isnull=True
    ).update(
        unverified_charge_limit=STARTER_UNVERIFIED_CHARGE_LIMIT,
        unverified_charge_limit_currency="USD",
    )


class Migration(migrations.Migration):
    dependencies = [("policies", "0008_principal_verification")]

    operations = [migrations.RunPython(limit_set, migrations.RunPython.noop)]
