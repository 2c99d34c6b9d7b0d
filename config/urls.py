from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("api/v1/health", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
]
