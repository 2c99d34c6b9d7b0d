"""gunicorn settings for the web service: ``gunicorn -c config/gunicorn.py config.asgi:application``.

Uvicorn workers serve the ASGI app. gunicorn's own lines (master and workers) go through Parley's logging
configuration, so with ``LOG_FORMAT=json`` every line the container prints is JSON; the access log comes from
``RequestIdMiddleware`` (one line per request, with its request id), so gunicorn's and uvicorn's are off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# gunicorn's console script does not put the working directory on sys.path before reading this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

from config.env import one_line_errors

# The master reads the settings here, before any worker: a malformed variable stops it with one line naming it.
with one_line_errors():
    logconfig_dict = settings.LOGGING

wsgi_app = "config.asgi:application"
worker_class = "uvicorn_worker.UvicornWorker"
bind = ["0.0.0.0:8000"]
accesslog = None
# gunicornc's control socket is not used; without it, parallel test servers do not share ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True
# Workers that stop answering (a blocked event loop) are replaced after this many seconds.
timeout = 30
graceful_timeout = 20
