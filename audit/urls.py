from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"
guild = "guilds/<int:guild_id>"  # the Discord guild id
urlpatterns = [
    path(f"{guild}/audit/", views.audit_log, name="log"),
    path(f"{guild}/audit/export/", views.audit_export, name="export"),
    path(f"{guild}/audit/<int:entry_id>/revert/", views.audit_revert, name="revert"),
]
