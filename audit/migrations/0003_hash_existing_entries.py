"""Chain the entries written before the hash chain existed, in id order (the order ``audit_verify`` walks).

Runs before 0004 installs the append-only triggers: after that, no row can be updated, this migration included.
"""

from django.db import migrations

from audit import chain

BATCH = 1000


def hash_existing(apps, schema_editor):
    AuditLog = apps.get_model("audit", "AuditLog")
    entries = AuditLog.objects.using(schema_editor.connection.alias).order_by("id")
    prev, last_id = chain.GENESIS, 0
    # Pages by id rather than one open cursor: the rows are updated while we walk them.
    while batch := list(entries.filter(id__gt=last_id)[:BATCH]):
        for entry in batch:
            entry.prev_hash = prev
            entry.hash = prev = chain.digest(entry, prev)
        AuditLog.objects.using(schema_editor.connection.alias).bulk_update(batch, ["prev_hash", "hash"])
        last_id = batch[-1].id


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_hash_chain"),
    ]

    operations = [
        migrations.RunPython(hash_existing, migrations.RunPython.noop),
    ]
