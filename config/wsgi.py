import os

from django.core.wsgi import get_wsgi_application

from config.env import one_line_errors

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
with one_line_errors():  # a malformed variable stops the server with one line naming it
    application = get_wsgi_application()
