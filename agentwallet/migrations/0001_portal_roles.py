"""The portal's roles as Django groups, with the permissions each carries.

Permissions are made by Django after all migrations run (post_migrate), so they are made
here first for the apps the roles name, as `migrate` would."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ_APPS = ("wallets", "cards", "policies", "ledger", "approvals")

ROLES = {
    # Sees everything, approves, edits policies and vendors, exports.
    "Finance": [
        "approvals.approve_requests",
        "policies.add_policy",
        "policies.change_policy",
        "policies.add_vendor",
        "policies.change_vendor",
        "policies.add_policyvendorcap",
        "policies.change_policyvendorcap",
        "policies.delete_policyvendorcap",
    ],
    # Sees and acts on the agents of the teams (principals) they lead.
    "Engineering lead": [
        "approvals.approve_requests",
        "wallets.add_agent",
        "wallets.add_apikey",
        "wallets.change_apikey",
        "cards.add_card",
        "cards.change_card",
    ],
    "Viewer": [],
}


def roles_create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    readable = Permission.objects.filter(
        content_type__app_label__in=READ_APPS, codename__startswith="view_"
    )
    for name, extra in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = list(readable)
        for label in extra:
            app_label, codename = label.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


def roles_remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("wallets", "0003_team_leads"),
        ("cards", "0002_learned_merchant_lock"),
        ("policies", "0005_vendor_merchant_locks"),
        ("ledger", "0008_network_events_merchant_lock"),
        ("approvals", "0002_initial"),
    ]

    operations = [migrations.RunPython(roles_create, roles_remove)]
