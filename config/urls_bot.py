"""The bot process's URLconf: it serves no Django page (its /health is botcore.health's own server), and the
web-only apps the pages need are not loaded there (PARLEY_PROCESS in config/settings.py)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
