"""The audit log is append-only: audit.record writes it, nothing changes or deletes it (the ORM refuses, and so
does the database), and its hash chain shows any change made past both (manage.py audit_verify)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

import audit
from audit import chain, triggers
from audit.models import AuditLog, AuditLogImmutable

TABLE = AuditLog._meta.db_table


@pytest.fixture
def entry(guild, alice) -> AuditLog:
    return audit.record(
        action="settings.update", guild=guild, actor=alice, changes={"model": ["a", "b"]}, ip="127.0.0.1"
    )


def test_record_writes_an_entry(entry, guild, alice):
    stored = AuditLog.objects.get(pk=entry.pk)
    assert stored.guild == guild
    assert stored.actor == alice
    assert stored.actor_label == "user"
    assert stored.changes == {"model": ["a", "b"]}
    assert stored.ip == "127.0.0.1"


def test_record_without_actor_is_system(guild):
    entry = audit.record(action="guild.join", guild=guild)
    assert entry.actor_label == "system"
    assert entry.actor_name == "system"


def test_model_save_refuses_update(entry):
    entry.action = "tampered"
    with pytest.raises(AuditLogImmutable):
        entry.save()
    assert AuditLog.objects.get(pk=entry.pk).action == "settings.update"


def test_model_delete_refuses(entry):
    with pytest.raises(AuditLogImmutable):
        entry.delete()
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_queryset_update_refuses(entry):
    with pytest.raises(AuditLogImmutable):
        AuditLog.objects.filter(pk=entry.pk).update(action="tampered")
    assert AuditLog.objects.get(pk=entry.pk).action == "settings.update"


def test_queryset_delete_refuses(entry):
    with pytest.raises(AuditLogImmutable):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.count() == 1


def test_deleting_an_audited_user_is_refused(entry, alice):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        alice.delete()


# --- The database refuses changes too -------------------------------------------------------------------------


def test_the_triggers_are_installed_by_the_migrations(db):
    assert triggers.installed(connection)


def _raw(sql: str, params: list[object]) -> None:
    # A failed statement aborts a PostgreSQL transaction: run it in a savepoint of its own.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_update_is_refused(entry):
    with pytest.raises(IntegrityError, match="append-only"):
        _raw(f"UPDATE {TABLE} SET action = %s WHERE id = %s", ["tampered", entry.pk])
    assert AuditLog.objects.get(pk=entry.pk).action == "settings.update"


def test_raw_delete_is_refused(entry):
    with pytest.raises(IntegrityError, match="append-only"):
        _raw(f"DELETE FROM {TABLE} WHERE id = %s", [entry.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        _raw(f"DELETE FROM {TABLE}", [])
    assert AuditLog.objects.filter(pk=entry.pk).exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(
    transaction=True
)  # committed rows: TRUNCATE refuses pending deferred FK checks on its own
def test_truncate_is_refused_on_postgresql(guild):
    entry = audit.record(action="guild.join", guild=guild)
    with pytest.raises(IntegrityError, match="append-only"):
        _raw(f"TRUNCATE {TABLE}", [])
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_bulk_create_cannot_rewrite_an_entry(entry):
    forged = AuditLog(id=entry.pk, action="tampered", guild_id=entry.guild_id, hash="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditLog.objects.bulk_create(
            [forged], update_conflicts=True, unique_fields=["id"], update_fields=["action", "hash"]
        )
    assert AuditLog.objects.get(pk=entry.pk).action == "settings.update"


def test_deleting_an_audited_guild_is_refused(entry, guild):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        guild.delete()


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_log_and_keeps_the_triggers(guild):
    """``manage.py flush`` (and so pytest-django between transactional tests) is the one way to empty it."""
    audit.record(action="guild.join", guild=guild)
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditLog.objects.exists()
    assert triggers.installed(connection)


# --- The hash chain -------------------------------------------------------------------------------------------


def test_entries_are_chained(guild, alice):
    first = audit.record(action="guild.join", guild=guild)
    second = audit.record(
        action="settings.update",
        guild=guild,
        actor=alice,
        # Values whose stored form differs from Python's: floats, a big float, unicode, nesting, IPv6.
        changes={
            "temperature": [0.7, 1.0],
            "big": [1e20, 2.5e-7],
            "prompt": ["", "Grüß dich 👋"],
            "ids": [[1], []],
        },
        ip="2001:DB8:0:0::1",
    )
    third_and_fourth = [
        {"action": "member.add", "guild_id": guild.pk, "actor_label": "bot", "target": f"user:{i}"}
        for i in (3, 4)
    ]
    audit.record_many(third_and_fourth)
    entries = list(AuditLog.objects.order_by("id"))
    assert [e.pk for e in entries[:2]] == [first.pk, second.pk]
    assert entries[0].prev_hash == chain.GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for stored in entries:  # read back from the database, the content still hashes to the stored hash
        assert len(stored.hash) == 64 and stored.content_hash() == stored.hash
    assert entries[1].hash == second.hash


def test_two_entries_cannot_follow_the_same_one(entry):
    fork = AuditLog(action="forged", prev_hash=entry.prev_hash, hash="f" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditLog.objects.bulk_create([fork])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain(guild):
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                with transaction.atomic():
                    audit.record(action="member.add", guild=guild, target=f"user:{n}-{i}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verify() == "OK: 40 entries"


def verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue().split(",")[0].strip()


@pytest.fixture
def unprotected(db) -> Iterator[None]:
    """The triggers dropped, as by someone with the database owner's password."""
    triggers.remove(connection)
    yield
    triggers.install(connection)


@pytest.fixture
def three(guild, alice) -> list[AuditLog]:
    return [
        audit.record(action="settings.update", guild=guild, actor=alice, changes={"model": ["a", f"b{i}"]})
        for i in range(3)
    ]


def test_audit_verify_accepts_an_intact_chain(db):
    assert verify() == "OK: 0 entries"


def test_audit_verify_names_a_changed_entry(three, unprotected):
    assert verify() == "OK: 3 entries"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET target = %s WHERE id = %s", ["forged", three[1].pk])
    with pytest.raises(CommandError, match=f"^entry #{three[1].pk}: content does not match its hash$"):
        verify()


def test_audit_verify_names_an_entry_rehashed_to_hide_a_change(three, unprotected):
    forged = AuditLog.objects.get(pk=three[1].pk)
    forged.action = "forged"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET action = %s, hash = %s WHERE id = %s",
            ["forged", forged.content_hash(), forged.pk],
        )
    with pytest.raises(CommandError, match=f"^chain broken before #{three[2].pk}:"):
        verify()


def test_audit_verify_names_the_entry_after_a_removed_one(three, unprotected):
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [three[1].pk])
    with pytest.raises(CommandError, match=f"^chain broken before #{three[2].pk}:"):
        verify()


def test_audit_verify_exits_1(three, unprotected):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET ip = %s WHERE id = %s", ["10.0.0.1", three[0].pk])
    with pytest.raises(CommandError) as failed:
        verify()
    assert failed.value.returncode == 1  # what manage.py exits with


def test_the_doctor_notices_missing_triggers(db):
    from audit.checks import check_append_only

    assert check_append_only() == []
    triggers.remove(connection)
    try:
        assert [m.id for m in check_append_only()] == ["parley.E081"]
    finally:
        triggers.install(connection)
