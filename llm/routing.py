from __future__ import annotations

from django.urls import path

from llm import consumers

websocket_urlpatterns = [
    path("ws/guilds/<int:guild_id>/playground/", consumers.PlaygroundConsumer.as_asgi()),
]
