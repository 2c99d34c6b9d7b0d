from __future__ import annotations

app_name = "botcore"
urlpatterns: list = []
