"""The hash chain's columns (filled by 0003 for existing rows, by audit.record for new ones) and the constraint that
keeps two entries from claiming the same predecessor. ``created_at`` loses ``auto_now_add``: audit.record sets it
before hashing, and ``auto_now_add`` would overwrite it on save."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditlog",
            name="hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="auditlog",
            name="prev_hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AlterField(
            model_name="auditlog",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddConstraint(
            model_name="auditlog",
            constraint=models.UniqueConstraint(
                condition=models.Q(("prev_hash", ""), _negated=True),
                fields=("prev_hash",),
                name="audit_chain_no_fork",
            ),
        ),
    ]
