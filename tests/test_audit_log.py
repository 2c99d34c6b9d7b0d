"""The audit log is append-only: audit.record writes it, nothing changes or deletes it."""

from __future__ import annotations

import pytest

import audit
from audit.models import AuditLog, AuditLogImmutable


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
