"""What Django's error pages (``DEBUG``) and error reports show: settings, request headers and local variables, with
secrets hidden.

Django already hides values whose names look secret (``PASSWORD``, ``KEY``, ``TOKEN``...), but not a password
inside a string: ``DATABASE_URL``, ``REDIS_URL``, the cache's ``LOCATION``, under ``runserver`` the same variables
again in ``request.META``, and psycopg's connection string in a traceback's local variables.
``DEFAULT_EXCEPTION_REPORTER_FILTER`` points here.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host: as urlsplit reads it, the password runs from the user's ":" to the netloc's last "@".
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/:@\s]*:)(?P<password>[^\s/]*)(?P<tail>@)", re.I)

# libpq's "dbname=parley user=parley password=... host=db", which psycopg builds from DATABASES.
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|[^\s']+)", re.I)


def hide_url_passwords(text: str, substitute: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m["head"] + substitute + m["tail"], text)
    return _CONNINFO_PASSWORD.sub(lambda m: m["head"] + substitute, text)


class SecretsHidingFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # The parent recurses into dicts, lists and tuples through this method, so nested strings come here too.
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return hide_url_passwords(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        """Local variables too, even with DEBUG on (where Django shows them unfiltered): a connection's
        ``password`` or a ``url`` with one in it."""
        return [
            (name, self.cleanse_setting(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
