"""``parley_doctor`` check that the database itself keeps the audit log append-only (registered in
``AuditConfig.ready``)."""

from __future__ import annotations

from django.core import checks
from django.core.checks import CheckMessage
from django.db import DatabaseError, connection

from audit import triggers


def check_append_only() -> list[CheckMessage]:
    try:
        if triggers.TABLE not in connection.introspection.table_names() or triggers.installed(connection):
            return []  # not migrated yet (the database check says so), or in place
    except DatabaseError:
        return []  # an unreachable database is the database check's finding (parley.E041)
    return [
        checks.Error(
            "the audit log's append-only triggers are missing: its rows can be updated and deleted.",
            hint="A migration that rebuilt audit_auditlog dropped them (SQLite rebuilds tables): run "
            "`manage.py shell -c 'from django.db import connection; from audit import triggers; "
            "triggers.install(connection)'`, then `manage.py audit_verify`.",
            obj="Audit log",
            id="parley.E081",
        )
    ]
