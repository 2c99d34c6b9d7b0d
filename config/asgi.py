"""The web process: Django's HTTP views, and the WebSocket consumers of each app behind the session login and an
Origin check against ALLOWED_HOSTS. ``config`` imports no app: each app's ``routing.py`` is named in
``settings.WEBSOCKET_ROUTES``, as config/urls.py includes each app's URLconf by its dotted name."""

import os

from django.core.asgi import get_asgi_application

from config.env import one_line_errors

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Sets Django up before any consumer (and its models) is imported; a malformed variable stops the server with one
# line naming it.
with one_line_errors():
    django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.utils.module_loading import import_string

websocket_urlpatterns = [
    pattern
    for routing in settings.WEBSOCKET_ROUTES
    for pattern in import_string(f"{routing}.websocket_urlpatterns")
]

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
