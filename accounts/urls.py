from __future__ import annotations

from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("discord/login", views.discord_login, name="discord_login"),
    path("me", views.me, name="me"),
]
