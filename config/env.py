"""Environment helpers for ``config/settings.py``.

Every setting comes from the environment through these helpers, so that a malformed value fails loudly at
start-up with the variable's name instead of surfacing later as a confusing error. ``load_env_file`` adds the
variables of ``.env`` first, and ``one_line_errors`` turns such a failure into one line instead of a traceback.

``python -m config.env`` prints the ``.env`` file's variables as shell ``export`` lines (those the environment does
not set already), so that ``scripts/run.sh`` sees the same configuration as the Python processes it starts.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def _number(name: str, parse: type[int] | type[float], kind: str) -> int | float | None:
    value = _raw(name)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from None


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    number = _number(name, int, "an integer")
    if number is None:
        return default
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {number}")
    return int(number)


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    number = _number(name, float, "a number")
    if number is None:
        return default
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return float(number)


def env_decimal(name: str, default: Decimal | None) -> Decimal | None:
    """A non-negative amount of money, e.g. ``0.50``; unset or empty gives ``default``."""
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be an amount like 0.50, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative amount, got {value!r}")
    return amount


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int_list(name: str) -> list[int]:
    """Comma-separated Discord ids (64-bit snowflakes)."""
    ids = []
    for item in env_list(name):
        if not (item.isascii() and item.isdigit()) or int(item) >= 2**64:
            raise ImproperlyConfigured(f"{name} must be comma-separated Discord ids, got {item!r}")
        ids.append(int(item))
    return ids


def env_secret(name: str, default: str | None = None) -> str | None:
    """Read ``NAME`` or, when it is unset, the file named by ``NAME_FILE`` (Docker/compose secrets)."""
    value = _raw(name)
    if value:
        return value
    path = _raw(f"{name}_FILE")
    if not path:
        return default
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name}_FILE points to {path!r}, which cannot be read ({exc.strerror})"
        ) from None
    # Placeholder files written by `make secrets` stand for "not configured".
    if not content or content.startswith("CHANGE_ME"):
        return default
    return content


FERNET_KEY_HINT = 'generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


def fernet_keys(name: str, value: str | None) -> list[str]:
    """``value`` (read with ``env_secret(name)``) as Fernet keys, comma-separated: the first encrypts, every one
    decrypts, so a new key goes first and the old one stays until ``manage.py rotate_encryption_key`` has run.
    The error never repeats the value: it is a secret."""
    keys = [item.strip() for item in (value or "").split(",") if item.strip()]
    for position, key in enumerate(keys, 1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 bytes, url-safe base64); {FERNET_KEY_HINT}"
            )
    return keys


# --- URLs -------------------------------------------------------------------------------------------------------


def _url_parts(name: str, value: str, example: str) -> SplitResult:
    """``value`` split, or ImproperlyConfigured naming ``name``; the message never repeats the value itself: a URL
    may hold a password."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not a valid URL; it must look like {example}") from None
    return parts


def check_database_url(name: str, value: str) -> None:
    """PostgreSQL with a host and a database name, or SQLite with a file: what Parley runs on."""
    example = "postgres://user@host:5432/parley or sqlite:////absolute/path.sqlite3"
    parts = _url_parts(name, value, example)
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        # A Unix socket is a percent-encoded host (postgres://%2Frun%2Fpostgresql/parley) or ?host=/run/postgresql.
        host = parts.hostname or parse_qs(parts.query).get("host")
        if not host or not parts.path.strip("/"):
            raise ImproperlyConfigured(f"{name} needs a host and a database name, like {example}")
    elif parts.scheme == "sqlite":
        # sqlite:// alone is an in-memory database, which the web and bot processes cannot share.
        if not parts.path.strip("/"):
            raise ImproperlyConfigured(f"{name} needs a database file, like {example}")
    else:
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ImproperlyConfigured(f"{name} must be a PostgreSQL or SQLite URL like {example}, got {scheme}")


def check_redis_url(name: str, value: str) -> None:
    """``redis://`` or ``rediss://`` with a host (and a database number, if any), or ``unix://`` with a path."""
    example = "redis://host:6379/0 (or rediss://, unix:///path/to/redis.sock)"
    parts = _url_parts(name, value, example)
    if parts.scheme in {"redis", "rediss"}:
        database = parts.path.strip("/")
        if not parts.hostname or (database and not database.isdigit()):
            raise ImproperlyConfigured(f"{name} needs a host and at most a database number, like {example}")
    elif parts.scheme == "unix":
        if not parts.path:
            raise ImproperlyConfigured(f"{name} needs the socket's path, like {example}")
    else:
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ImproperlyConfigured(f"{name} must be a Redis URL like {example}, got {scheme}")


# --- The .env file, and errors at start-up ------------------------------------------------------------------------


def env_file_path(name: str, default: Path) -> Path | None:
    """The file named by the variable ``name`` (set but empty: none), else ``default`` if it exists."""
    named = _raw(name)
    if named is None:
        return default if default.is_file() else None
    if not named:
        return None
    path = Path(named)
    if not path.is_file():
        raise ImproperlyConfigured(f"{name} names {named!r}, which is not a file")
    return path


def load_env_file(name: str, default: Path) -> Path | None:
    """Add the variables of the file ``env_file_path`` chooses (``.env``) to the environment; a variable the
    environment already has keeps its value. Returns the file read, if any."""
    from dotenv import load_dotenv

    path = env_file_path(name, default)
    if path is not None:
        load_dotenv(path, override=False, encoding="utf-8")
    return path


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Around whatever loads the settings (manage.py, the ASGI/WSGI modules, gunicorn's config): a malformed
    variable stops the process with one line naming it instead of a traceback. Only errors raised while the
    settings load: an ImproperlyConfigured from code running later keeps its traceback."""
    try:
        yield
    except ImproperlyConfigured as exc:
        from django.conf import settings

        if settings.configured:
            raise
        raise SystemExit(f"Parley cannot start: {exc}") from None


def _print_exports(name: str, default: Path) -> int:
    from dotenv import dotenv_values

    try:
        path = env_file_path(name, default)
    except ImproperlyConfigured as exc:
        print(f"Parley cannot start: {exc}", file=sys.stderr)
        return 1
    values = dotenv_values(path, encoding="utf-8") if path is not None else {}
    for key, value in values.items():
        # A name the shell cannot export is left to the Python processes, which read the file themselves.
        if key.isidentifier() and key.isascii() and key not in os.environ and value is not None:
            print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_print_exports("PARLEY_ENV_FILE", Path(__file__).resolve().parent.parent / ".env"))
