"""Environment helpers for ``config/settings.py``.

Every setting comes from the environment through these helpers, so that a malformed value fails loudly at
start-up with the variable's name instead of surfacing later as a confusing error.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

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
