"""The web process: Django's HTTP views, and the WebSocket consumers of each app behind the session login and an
Origin check against ALLOWED_HOSTS. ``config`` imports no app: each app's ``routing.py`` is named in
``settings.WEBSOCKET_ROUTES``, as config/urls.py includes each app's URLconf by its dotted name."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()  # sets Django up before any consumer (and its models) is imported

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

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
