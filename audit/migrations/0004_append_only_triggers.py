"""Make the audit log append-only in the database itself (audit/triggers.py), not only in the ORM.

- **PostgreSQL**: a plpgsql function raising ``restrict_violation`` (an IntegrityError), run BEFORE UPDATE OR
  DELETE of each row and BEFORE TRUNCATE of the table (TRUNCATE fires no row trigger).
- **SQLite**: BEFORE UPDATE and BEFORE DELETE triggers that ``RAISE(ABORT, ...)`` (also an IntegrityError).

So a raw ``UPDATE``, ``bulk_create(update_conflicts=True)`` (an UPDATE on conflict) and a ``DELETE`` all fail.
The foreign keys from an entry to its guild and actor are PROTECT, and in the database they refuse a deleted parent
while entries point at it, so nothing cascades into the log either.

**Emptying the database on purpose.** ``manage.py flush`` empties every table: with TRUNCATE on PostgreSQL and
``DELETE FROM`` on SQLite, both refused now. pytest-django flushes this way after every transactional test
(``transactional_db``, ``live_server``). Parley's own ``flush`` (audit/management/commands/flush.py, which takes
over Django's) drops the triggers, flushes and installs them again in one transaction, so nothing else ever sees
the log unprotected and a failed flush leaves the triggers in place. That is the one escape hatch, and it is an
explicit, whole-database command; a role that owns the table could drop the triggers anyway, which is what the
hash chain (``manage.py audit_verify``) is for.

**Later migrations on SQLite.** Django rebuilds a SQLite table for most schema changes (create a copy, drop the
old table), and dropping a table drops its triggers: a migration that alters ``audit_auditlog`` must call
``audit.triggers.install`` again (tests/test_audit_log.py checks the triggers exist after all migrations).
"""

from django.db import migrations

from audit import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_hash_existing_entries"),
    ]

    operations = [
        migrations.RunPython(install, remove),
    ]
