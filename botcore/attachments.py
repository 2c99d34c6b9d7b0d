"""Attachments: images go to vision models, text files are inlined, anything else is named but not sent.

Downloads are untrusted: only from Discord's CDN (plus ``settings.DISCORD_CDN_HOSTS``), never following a
redirect, within FETCH_TIMEOUT_SECONDS in all, read in chunks up to a byte cap whatever size the message declares,
and only when the served content type is what the attachment claimed to be. Whatever goes wrong becomes a short
note in the prompt, never an exception.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord
from django.conf import settings

logger = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_TEXT_CHARS = 8000
MAX_TEXT_BYTES = MAX_TEXT_CHARS * 4  # UTF-8 takes at most 4 bytes a character
DISCORD_CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
FETCH_TIMEOUT_SECONDS = 15.0  # each download in all: connecting, the headers and the last byte
CHUNK_BYTES = 64 * 1024
TEXT_EXTENSIONS = {
    ".txt",
    ".md",
    ".py",
    ".js",
    ".ts",
    ".json",
    ".csv",
    ".log",
    ".yaml",
    ".yml",
    ".toml",
    ".html",
    ".css",
    ".sql",
    ".sh",
}
NO_VISION_NOTE = "[An image was attached, but this model cannot see images, so it was left out.]"


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").startswith("image/")


def _is_text(attachment: discord.Attachment) -> bool:
    content_type = attachment.content_type or ""
    return content_type.startswith("text/") or _has_text_extension(attachment.filename)


class Refused(Exception):
    """An attachment that is not read; the message is the note's reason ("too large", ...)."""


def _allowed_url(url: str) -> bool:
    """Discord's CDN over HTTPS, or a host of DISCORD_CDN_HOSTS (over HTTP too: the local fake Discord)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        return False
    if parts.scheme == "https" and host in DISCORD_CDN_HOSTS:
        return True
    return parts.scheme in {"http", "https"} and host in {h.lower() for h in settings.DISCORD_CDN_HOSTS}


def _image_type(content_type: str) -> bool:
    return content_type.startswith("image/")


def _text_type(filename: str) -> Callable[[str], bool]:
    def accepts(content_type: str) -> bool:
        if content_type.startswith("text/"):
            return True
        # Discord serves .json, .js, .sh and friends as application/*; an image, audio or video is not text.
        return _has_text_extension(filename) and content_type.startswith("application/")

    return accepts


def _has_text_extension(filename: str) -> bool:
    name = filename.lower()
    return any(name.endswith(ext) for ext in TEXT_EXTENSIONS)


class Downloader:
    """One aiohttp session for a message's attachments, opened on the first download."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Downloader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def read(
        self, attachment: discord.Attachment, *, limit: int, accepts: Callable[[str], bool]
    ) -> tuple[bytes, str]:
        """``(body, content type)``; raises Refused with the reason. At most ``limit`` bytes are kept: reading
        stops at the first byte past it, whatever the message or the Content-Length header declared."""
        if attachment.size > limit:
            raise Refused("too large")
        if not _allowed_url(attachment.url):
            logger.warning(
                "attachment %s not fetched: %s is not Discord's CDN", attachment.id, attachment.url
            )
            raise Refused("not from Discord's CDN")
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS))
        try:
            async with self.session.get(attachment.url, allow_redirects=False) as response:
                if response.status != 200:
                    raise Refused(f"HTTP {response.status}")
                content_type = response.content_type.lower()
                if not accepts(content_type):
                    raise Refused(f"served as {content_type}")
                if response.content_length is not None and response.content_length > limit:
                    raise Refused("too large")
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    body += chunk
                    if len(body) > limit:
                        raise Refused("too large")
                return bytes(body), content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("could not read attachment %s: %r", attachment.id, exc)
            raise Refused("could not be downloaded") from None


async def read_attachments(
    attachments: list[discord.Attachment], *, vision: bool, image_budget: list[int]
) -> tuple[list[str], list[dict[str, Any]]]:
    """``(notes, images)`` for a message's attachments: text files inlined and words on what was left out, and
    OpenAI-style image parts for vision models.

    ``image_budget`` is a one-item list shared across the reply chain so at most MAX_IMAGES images go in all.
    """
    notes: list[str] = []
    images: list[dict[str, Any]] = []
    async with Downloader() as downloader:
        for attachment in attachments:
            name = attachment.filename
            if _is_image(attachment):
                if not vision:
                    notes.append(NO_VISION_NOTE)
                    continue
                if image_budget[0] <= 0:
                    notes.append(f"[Image {name} left out: too many or too large.]")
                    continue
                try:
                    data, content_type = await downloader.read(
                        attachment, limit=MAX_IMAGE_BYTES, accepts=_image_type
                    )
                except Refused as refused:
                    notes.append(f"[Image {name} left out: {refused}.]")
                    continue
                image_budget[0] -= 1
                encoded = base64.b64encode(data).decode()
                images.append(
                    {"type": "image_url", "image_url": {"url": f"data:{content_type};base64,{encoded}"}}
                )
            elif _is_text(attachment):
                try:
                    data, _ = await downloader.read(
                        attachment, limit=MAX_TEXT_BYTES, accepts=_text_type(name)
                    )
                except Refused as refused:
                    notes.append(f"[File {name} left out: {refused}.]")
                    continue
                body = data.decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]
                notes.append(f"[File {name}]\n{body}\n[End of {name}]")
            else:
                notes.append(f"[Attachment {name} ({attachment.content_type or 'unknown type'}) not sent.]")
    return notes, images
