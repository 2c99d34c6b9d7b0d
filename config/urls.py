from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("api/v1/health", views.health, name="health"),
    path("api/v1/auth/", include("accounts.urls")),
    path("dashboard/", include("guilds.urls")),
    path("dashboard/", include("audit.urls")),
    path("dashboard/", include("llm.urls")),
    path("", include("botcore.urls")),
    path("admin/", admin.site.urls),
    # allauth's pages, with the password and email ones limited to operators and to a configured mail server.
    path("accounts/", include("accounts.allauth_urls")),
]
