"""Database triggers that make the audit log append-only for every client, not only the ORM: an UPDATE or DELETE
of an ``audit_auditlog`` row (and, on PostgreSQL, a TRUNCATE of the table) fails with an IntegrityError.

Installed by migration 0004. ``manage.py flush`` (audit/management/commands/flush.py), which empties the whole
database on purpose (tests use it between transactional tests), lifts them for its own transaction only.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditlog"
REFUSED = "audit_auditlog is append-only"

POSTGRESQL_INSTALL = [
    # restrict_violation (SQLSTATE 23001) is an integrity error: Django raises IntegrityError.
    f"""CREATE OR REPLACE FUNCTION audit_auditlog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = '{REFUSED}: ' || TG_OP || ' refused', ERRCODE = 'restrict_violation';
    END
    $$""",
    f"""CREATE TRIGGER audit_auditlog_no_change BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_auditlog_refuse()""",
    # TRUNCATE fires no row trigger: it gets a statement trigger of its own.
    f"""CREATE TRIGGER audit_auditlog_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditlog_refuse()""",
]
POSTGRESQL_REMOVE = [
    f"DROP TRIGGER IF EXISTS audit_auditlog_no_change ON {TABLE}",
    f"DROP TRIGGER IF EXISTS audit_auditlog_no_truncate ON {TABLE}",
    "DROP FUNCTION IF EXISTS audit_auditlog_refuse()",
]
# RAISE(ABORT, ...) is SQLITE_CONSTRAINT: Django raises IntegrityError. SQLite has no TRUNCATE (a DELETE without
# WHERE skips its "truncate optimization" when the table has triggers, so the DELETE trigger covers it).
SQLITE_INSTALL = [
    f"""CREATE TRIGGER audit_auditlog_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{REFUSED}: UPDATE refused'); END""",
    f"""CREATE TRIGGER audit_auditlog_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{REFUSED}: DELETE refused'); END""",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_auditlog_no_update",
    "DROP TRIGGER IF EXISTS audit_auditlog_no_delete",
]
INSTALLED = {
    "postgresql": "SELECT count(*) FROM pg_trigger WHERE tgname IN ('audit_auditlog_no_change', "
    "'audit_auditlog_no_truncate') AND tgrelid = 'audit_auditlog'::regclass",
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditlog' "
    "AND name IN ('audit_auditlog_no_update', 'audit_auditlog_no_delete')",
}


def _run(connection: BaseDatabaseWrapper, statements: dict[str, list[str]]) -> None:
    if connection.vendor not in statements:
        raise NotImplementedError(
            f"No append-only triggers for {connection.vendor}: Parley runs on PostgreSQL or SQLite."
        )
    with connection.cursor() as cursor:
        for sql in statements[connection.vendor]:
            cursor.execute(sql)  # no params: the SQL's quotes and % are the database's, not placeholders


def install(connection: BaseDatabaseWrapper) -> None:
    _run(connection, {"postgresql": POSTGRESQL_INSTALL, "sqlite": SQLITE_INSTALL})


def remove(connection: BaseDatabaseWrapper) -> None:
    _run(connection, {"postgresql": POSTGRESQL_REMOVE, "sqlite": SQLITE_REMOVE})


def installed(connection: BaseDatabaseWrapper) -> bool:
    """Both triggers are in place (a table rebuilt by a later migration on SQLite would lose them)."""
    if TABLE not in connection.introspection.table_names():
        return False
    with connection.cursor() as cursor:
        cursor.execute(INSTALLED[connection.vendor])
        row = cursor.fetchone()
    return bool(row) and row[0] == 2
