"""Is the database reachable, is the cache: the one probe behind both /health endpoints and ``parley_doctor``.

A probe answers within about ``PROBE_TIMEOUT`` seconds even when the server is down, so a health endpoint running
both still answers (503) within a second instead of waiting for the psycopg pool (DATABASE_POOL_TIMEOUT, 5 s) or
the cache's socket timeouts (2 s). On failure the reason is the exception's type and message: drivers leave
passwords out of both.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, close_old_connections, connections

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds each probe may wait for a connection or an answer; a health request runs two of them.
PROBE_TIMEOUT = 0.4
# libpq's smallest connect_timeout: it reads 1 as 2.
_LIBPQ_CONNECT_TIMEOUT = 2


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str = ""

    @property
    def state(self) -> str:
        """What the health endpoints show: ``ok`` or ``error``."""
        return "ok" if self.ok else "error"


def _failed(part: str, exc: Exception) -> Probe:
    logger.warning("probe: %s unreachable: %s", part, type(exc).__name__)
    return Probe(ok=False, reason=f"{type(exc).__name__}: {str(exc).strip()[:200]}")


def database_probe(alias: str = DEFAULT_DB_ALIAS) -> Probe:
    """``SELECT 1`` on a connection of its own: the pool's, or a fresh one without a pool."""
    connection = connections[alias]
    try:
        if connection.vendor == "postgresql":
            _postgresql_select_1(connection)
        else:
            # SQLite: a local file, nothing to wait for.
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
    except Exception as exc:
        return _failed("database", exc)
    return Probe(ok=True)


def _postgresql_select_1(connection: Any) -> None:
    pool = connection.pool
    if pool is not None:
        # The pool is what requests wait on; asking it with a short timeout of our own is cheap when it has a
        # connection, and fails fast (PoolTimeout) when none can be made.
        pool.open()
        with pool.connection(timeout=PROBE_TIMEOUT) as conn:
            conn.execute("SELECT 1")
        return
    import psycopg

    params = {**connection.get_connection_params(), "connect_timeout": _LIBPQ_CONNECT_TIMEOUT}
    with psycopg.connect(**params) as conn:
        conn.execute("SELECT 1")


def cache_probe() -> Probe:
    """A value written and read back: with Redis in one round trip on a client of its own with short timeouts."""
    key = f"parley-probe:{uuid.uuid4().hex}"
    try:
        if settings.REDIS_URL:
            value = _redis_round_trip(settings.REDIS_URL, key)
        else:
            cache.set(key, b"1", timeout=5)
            value = cache.get(key)
            cache.delete(key)
    except Exception as exc:
        return _failed("cache", exc)
    if value != b"1":
        return Probe(ok=False, reason="the value written was not read back")
    return Probe(ok=True)


def _redis_round_trip(url: str, key: str) -> bytes | None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # redis-py retries a failed connection three times by default: each try would wait the timeout again.
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT, retry=Retry(NoBackoff(), 0)
    )
    try:
        pipeline = client.pipeline()  # one round trip
        pipeline.set(key, b"1", px=5000)
        pipeline.get(key)
        pipeline.delete(key)
        _, value, _ = pipeline.execute()
    finally:
        client.close()
    return value


class Outage:
    """Remembers, for a few seconds, that the database just failed, so that each message does not wait for the
    pool's timeout again: callers check ``active`` first and go straight to their fallback (cached settings, a
    notice, rows kept for later). After ``seconds`` the next caller tries the database again."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until = 0.0

    @property
    def active(self) -> bool:
        return time.monotonic() < self._until

    def begin(self) -> None:
        self._until = time.monotonic() + self.seconds

    def end(self) -> None:
        self._until = 0.0


database_outage = Outage(seconds=5.0)


async def database_call(fn: Callable[[], T], *, what: str) -> T:
    """``fn()`` on the database thread for an async caller (the bot, a socket), tried ``BOT_DATABASE_ATTEMPTS``
    times with backoff. While ``database_outage`` is active nothing is tried: ``DatabaseError`` at once, so that
    every caller does not wait for the pool in turn. The last failure starts an outage; a success ends it."""
    attempts = settings.BOT_DATABASE_ATTEMPTS
    for attempt in range(attempts):
        if database_outage.active:
            raise DatabaseError("the database failed moments ago")
        try:
            result = await sync_to_async(fn)()
        except DatabaseError as exc:
            logger.warning(
                "%s: database error (%s), attempt %d of %d", what, type(exc).__name__, attempt + 1, attempts
            )
            await sync_to_async(close_old_connections)()
            if attempt + 1 == attempts:
                database_outage.begin()
                raise
            await asyncio.sleep(settings.BOT_DATABASE_RETRY_SECONDS * 2**attempt)
        else:
            database_outage.end()
            return result
    raise AssertionError("unreachable")


async def on_worker_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on a worker thread instead of the shared database thread (work that must not queue behind the
    messages there, or hold them up), with that thread's connection closed afterwards: pool threads outlive the
    call, and a connection left open in each would stay checked out of the pool for good."""

    def run() -> T:
        try:
            return fn()
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()
