"""The portal's roles and the issuer reconciliations: Finance and viewers read them (like the
sprint reports, they cover the whole organisation, so the portal shows leads none)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Finance": ["view_issuerreconciliation"],
    "Viewer": ["view_issuerreconciliation"],
}


def grant(apps, schema_editor):
    ledger = apps.get_app_config("ledger")
    ledger.models_module = True
    create_permissions(ledger, apps=apps, verbosity=0)
    ledger.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(
                *Permission.objects.filter(content_type__app_label="ledger", codename__in=codenames)
            )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        for group in Group.objects.filter(name=name):
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="ledger", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0017_issuer_reconciliation"),
        ("agentwallet", "0001_portal_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
