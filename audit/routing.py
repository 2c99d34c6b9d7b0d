from __future__ import annotations

from django.urls import path

from audit import consumers

websocket_urlpatterns = [
    path("ws/guilds/<int:guild_id>/audit/", consumers.AuditTailConsumer.as_asgi()),
]
