from __future__ import annotations


app_name = "guilds"
urlpatterns: list = []
