from __future__ import annotations

from django.urls import path

from botcore import views

app_name = "botcore"
urlpatterns = [
    path("api/v1/shards", views.shards_api, name="shards-api"),
    path("dashboard/status", views.status_page, name="status"),
    path("dashboard/guilds/<int:guild_id>/inspector/", views.answer_inspector, name="inspector"),
]
