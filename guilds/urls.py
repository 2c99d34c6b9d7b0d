from __future__ import annotations

from django.urls import path

from guilds import backup_views, member_views, views

app_name = "guilds"
guild = "guilds/<int:guild_id>"  # the Discord guild id
urlpatterns = [
    path("", views.guild_list, name="list"),
    path(f"{guild}/settings/", views.guild_settings, name="settings"),
    path(f"{guild}/settings/overrides/", views.channel_override, name="override"),
    path(
        f"{guild}/settings/overrides/<int:channel_id>/remove/",
        views.channel_override_remove,
        name="override_remove",
    ),
    path(f"{guild}/settings/roles/", views.role_override, name="role_override"),
    path(
        f"{guild}/settings/roles/<int:role_id>/remove/",
        views.role_override_remove,
        name="role_override_remove",
    ),
    path(f"{guild}/members/", member_views.members, name="members"),
    path(f"{guild}/members/<int:member_id>/role/", member_views.member_role, name="member_role"),
    path(f"{guild}/members/<int:member_id>/remove/", member_views.member_remove, name="member_remove"),
    path(f"{guild}/backup/", backup_views.backup_page, name="backup"),
    path(f"{guild}/backup/export.json", backup_views.backup_export, name="backup_export"),
]
