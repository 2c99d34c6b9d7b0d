from __future__ import annotations

from django.urls import path

from botcore import consumers

websocket_urlpatterns = [path("ws/status/", consumers.StatusConsumer.as_asgi())]
