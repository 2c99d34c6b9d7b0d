from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = ("created_at", "action", "guild", "actor_name", "target", "ip", "short_hash")
    list_filter = ("action", "actor_label")
    search_fields = ("action", "target", "guild__name", "actor__username")
    list_select_related = ("guild", "actor")
    date_hierarchy = "created_at"

    @admin.display(description="Hash")
    def short_hash(self, obj: AuditLog) -> str:
        """The start of the chain hash (``manage.py audit_verify`` checks the whole chain)."""
        return obj.hash[:12]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
