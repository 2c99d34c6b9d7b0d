"""Attachments are downloaded like untrusted input: only from Discord's CDN, capped in bytes whatever their declared
size, within a timeout and with the content type they claim. What fails becomes a note in the prompt."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import pytest_asyncio
from aiohttp import web

from botcore import attachments
from botcore.attachments import MAX_IMAGE_BYTES, read_attachments

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EIGHT_MB = 8 * 1024 * 1024
NO_STATE: Any = SimpleNamespace(http=None)  # reading goes through botcore.attachments, not discord.py


def attachment(url: str, *, filename: str, content_type: str, size: int) -> discord.Attachment:
    data: Any = {
        "id": "1",
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "content_type": content_type,
    }
    return discord.Attachment(data=data, state=NO_STATE)


async def read(*items: discord.Attachment, vision: bool = True) -> tuple[list[str], list[dict[str, Any]]]:
    return await read_attachments(list(items), vision=vision, image_budget=[4])


@pytest.fixture
def cdn_hosts(settings):
    settings.DISCORD_CDN_HOSTS = [
        "127.0.0.1"
    ]  # "localhost" stays foreign: the same server under another name


class Server:
    """A local HTTP server that misbehaves on purpose, and records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.url = ""

    async def huge(self, request: web.Request) -> web.StreamResponse:
        """8 MB without a Content-Length: only counting the bytes read stops it."""
        response = web.StreamResponse(headers={"Content-Type": request.query["type"]})
        await response.prepare(request)
        chunk = b"\0" * (1024 * 1024)
        try:
            for _ in range(8):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    async def huge_declared(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * EIGHT_MB, headers={"Content-Type": request.query["type"]})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        """Headers at once, then a byte a second: each read is quick, the whole is not."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            for _ in range(30):
                await response.write(b"x")
                await asyncio.sleep(1)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def html(self, request: web.Request) -> web.Response:
        return web.Response(text="<script>alert(1)</script>", content_type="text/html")

    async def png(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.url.replace("127.0.0.1", "localhost") + "/png")

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.host.split(':')[0]} {request.path}")
        return await handler(request)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    server = Server()
    app = web.Application(middlewares=[server.record])
    app.router.add_get("/huge", server.huge)
    app.router.add_get("/huge-declared", server.huge_declared)
    app.router.add_get("/slow", server.slow)
    app.router.add_get("/html", server.html)
    app.router.add_get("/png", server.png)
    app.router.add_get("/redirect", server.redirect)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


def test_happy_path_through_the_fake_discord_cdn(fake, cdn_hosts):
    guild = fake.add_guild()
    channel_id = int(guild["channels"][0]["id"])
    message = fake.send_user_message(
        channel_id,
        "look",
        attachments=[
            {"filename": "dot.png", "data": PNG, "content_type": "image/png"},
            {
                "filename": "notes.txt",
                "data": "remember the milk",
                "content_type": "text/plain; charset=utf-8",
            },
            {"filename": "data.json", "data": '{"a": 1}', "content_type": "application/json"},
        ],
    )
    items = [discord.Attachment(data=a, state=NO_STATE) for a in message["attachments"]]
    notes, images = asyncio.run(read(*items))
    assert notes == [
        "[File notes.txt]\nremember the milk\n[End of notes.txt]",
        '[File data.json]\n{"a": 1}\n[End of data.json]',
    ]
    assert images == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/huge", "/huge-declared"], ids=["streamed", "content-length"])
async def test_a_lying_declared_size_is_capped(server, cdn_hosts, path):
    image = attachment(
        f"{server.url}{path}?type=image/png", filename="a.png", content_type="image/png", size=100
    )
    text = attachment(
        f"{server.url}{path}?type=text/plain", filename="a.txt", content_type="text/plain", size=100
    )
    notes, images = await read(image, text)
    assert notes == ["[Image a.png left out: too large.]", "[File a.txt left out: too large.]"]
    assert images == []


@pytest.mark.asyncio
async def test_the_declared_size_is_checked_before_any_download(server, cdn_hosts):
    big = attachment(
        server.url + "/png", filename="big.png", content_type="image/png", size=MAX_IMAGE_BYTES + 1
    )
    notes, images = await read(big)
    assert notes == ["[Image big.png left out: too large.]"] and images == []
    assert server.requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/png",  # the very same server, by a name that is not allowed
        "https://evil.example/png",
        "https://cdn.discordapp.com.evil.example/png",
        "http://cdn.discordapp.com/png",  # Discord's CDN, but not over HTTPS
        "https://127.0.0.1:99999/png",  # a port that does not parse
        "file:///etc/passwd",
    ],
)
async def test_a_foreign_host_is_not_fetched(server, cdn_hosts, url):
    port = server.url.rsplit(":", 1)[1]
    foreign = attachment(url.format(port=port), filename="x.png", content_type="image/png", size=10)
    notes, images = await read(foreign)
    assert notes == ["[Image x.png left out: not from Discord's CDN.]"] and images == []
    assert server.requests == []


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(server, cdn_hosts):
    moved = attachment(server.url + "/redirect", filename="x.png", content_type="image/png", size=10)
    notes, images = await read(moved)
    assert notes == ["[Image x.png left out: HTTP 302.]"] and images == []
    assert server.requests == ["127.0.0.1 /redirect"]


@pytest.mark.asyncio
async def test_a_slow_server_times_out(server, cdn_hosts, monkeypatch):
    monkeypatch.setattr(attachments, "FETCH_TIMEOUT_SECONDS", 0.5)
    slow = attachment(server.url + "/slow", filename="slow.txt", content_type="text/plain", size=10)
    started = asyncio.get_running_loop().time()
    notes, _ = await read(slow)
    assert notes == ["[File slow.txt left out: could not be downloaded.]"]
    assert asyncio.get_running_loop().time() - started < 3


@pytest.mark.asyncio
async def test_a_wrong_content_type_is_refused(server, cdn_hosts):
    fake_image = attachment(server.url + "/html", filename="cat.png", content_type="image/png", size=25)
    fake_text = attachment(
        server.url + "/png", filename="notes.txt", content_type="text/plain", size=len(PNG)
    )
    notes, images = await read(fake_image, fake_text)
    assert notes == [
        "[Image cat.png left out: served as text/html.]",
        "[File notes.txt left out: served as image/png.]",
    ]
    assert images == []


@pytest.mark.asyncio
async def test_the_happy_path_against_a_local_server(server, cdn_hosts):
    image = attachment(server.url + "/png", filename="dot.png", content_type="image/png", size=len(PNG))
    notes, images = await read(image)
    assert notes == [] and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    notes, images = await read(image, vision=False)
    assert notes == [attachments.NO_VISION_NOTE] and images == []
    assert server.requests == ["127.0.0.1 /png"]


@pytest.mark.asyncio
async def test_an_unreachable_cdn_is_a_note(cdn_hosts):
    gone = attachment("http://127.0.0.1:9/gone.txt", filename="gone.txt", content_type="text/plain", size=4)
    notes, _ = await read(gone)
    assert notes == ["[File gone.txt left out: could not be downloaded.]"]
