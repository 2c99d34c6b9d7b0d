from __future__ import annotations

from django.urls import path

from llm import views

app_name = "llm"
guild = "guilds/<int:guild_id>"  # the Discord guild id
urlpatterns = [
    path(f"{guild}/usage/", views.usage_page, name="usage"),
    path(f"{guild}/playground/", views.playground, name="playground"),
    path(f"{guild}/keys/", views.provider_keys, name="keys"),
    path(f"{guild}/keys/<slug:provider>/remove/", views.provider_key_remove_view, name="key_remove"),
    path("direct-messages/usage/", views.dm_usage, name="dm_usage"),
]
