"""The operators' admin. Settings, channel overrides and memberships are read-only here: they change only through
guilds/services.py, which audits every change and bumps ``GuildSettings.version`` so the bot reloads. Each of those
pages links to the dashboard page that makes the change (operators open any guild's dashboard as its owner)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from guilds.models import Channel, ChannelSettings, Guild, GuildSettings, Membership, RoleSettings


def _dashboard_link(url_name: str, guild: Guild | None, label: str) -> str:
    if guild is None:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[guild.discord_id]), label)


class DashboardManaged(admin.ModelAdmin):
    """A model admin that shows rows and links to the dashboard page (``dashboard_url``) where they change."""

    dashboard_url = "guilds:settings"
    dashboard_label = "Change these settings on the dashboard"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("dashboard", *super().get_readonly_fields(request, obj))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return ["dashboard", *[f for f in super().get_fields(request, obj) if f != "dashboard"]]

    @admin.display(description="Dashboard")
    def dashboard(self, obj: Any) -> str:
        return _dashboard_link(self.dashboard_url, getattr(obj, "guild", None), self.dashboard_label)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GuildSettingsInline(admin.StackedInline):
    model = GuildSettings
    can_delete = False
    readonly_fields = ("dashboard",)
    verbose_name_plural = "Settings (read-only here: change them on the dashboard)"

    @admin.display(description="Dashboard")
    def dashboard(self, obj: GuildSettings) -> str:
        return _dashboard_link(
            "guilds:settings", getattr(obj, "guild", None), DashboardManaged.dashboard_label
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Guild)
class GuildAdmin(admin.ModelAdmin):
    """Discord's state as the bot syncs it (name, owner, shard, active): an edit here would be undone by the next
    sync and would bypass the audit log, so it is read-only too."""

    list_display = ("name", "discord_id", "shard_id", "member_count", "is_active", "joined_at", "dashboard")
    list_filter = ("is_active", "shard_id")
    search_fields = ("name", "discord_id", "owner_discord_id")
    inlines = [GuildSettingsInline]

    @admin.display(description="Dashboard")
    def dashboard(self, obj: Guild) -> str:
        return _dashboard_link("guilds:settings", obj, "Settings")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the bot adds guilds as it joins them, each with its settings row

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GuildSettings)
class GuildSettingsAdmin(DashboardManaged):
    list_display = ("guild", "enabled", "model", "version", "updated_at", "dashboard")
    list_filter = ("enabled", "model")
    search_fields = ("guild__name", "guild__discord_id")
    list_select_related = ("guild",)


@admin.register(ChannelSettings)
class ChannelSettingsAdmin(DashboardManaged):
    list_display = ("guild", "channel_id", "model", "mode", "dashboard")
    search_fields = ("guild__name", "channel_id")
    list_select_related = ("guild",)
    dashboard_label = "Change the channel overrides on the dashboard"


@admin.register(RoleSettings)
class RoleSettingsAdmin(DashboardManaged):
    list_display = ("guild", "role_id", "model", "dashboard")
    search_fields = ("guild__name", "role_id")
    list_select_related = ("guild",)
    dashboard_label = "Change the role overrides on the dashboard"


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "discord_id", "guild", "kind")
    list_filter = ("kind",)
    search_fields = ("name", "discord_id", "guild__name")
    list_select_related = ("guild",)


@admin.register(Membership)
class MembershipAdmin(DashboardManaged):
    list_display = ("user", "guild", "role", "created_at", "dashboard")
    list_filter = ("role",)
    search_fields = ("user__username", "user__discord_id", "guild__name", "guild__discord_id")
    list_select_related = ("user", "guild")
    dashboard_url = "guilds:members"
    dashboard_label = "Change the members on the dashboard"
