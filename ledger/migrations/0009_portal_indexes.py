"""Indexes for the portal's pages at a million entries (bench/portal.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0002_initial'),
        ('cards', '0003_cardevent_cap_changed'),
        ('ledger', '0008_network_events_merchant_lock'),
        ('policies', '0005_vendor_merchant_locks'),
        ('wallets', '0003_team_leads'),
    ]

    operations = [
        # The trace_id index goes (the (trace_id, id) one below serves its queries) by a
        # plain DROP INDEX: an AlterField would make SQLite rebuild the table, and the
        # rebuild drops the triggers that keep ledger entries immutable (0002).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='trace_id',
                    field=models.CharField(blank=True, max_length=128),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "ledger_ledgerentry_trace_id_d3b1b437";',
                    reverse_sql='CREATE INDEX "ledger_ledgerentry_trace_id_d3b1b437" '
                    'ON "ledger_ledgerentry" ("trace_id");',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='authorization',
            index=models.Index(condition=models.Q(('approval_request__isnull', False)), fields=['approval_request'], name='ledger_auth_approval'),
        ),
        migrations.AddIndex(
            model_name='authorization',
            index=models.Index(condition=models.Q(('decision', 'declined')), fields=['decided_at'], name='ledger_auth_declines'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(fields=['trace_id', 'id'], name='ledger_entry_trace_id'),
        ),
    ]
