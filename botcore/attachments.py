"""Attachments: images go to vision models, text files are inlined, anything else is named but not sent."""

from __future__ import annotations

import base64
import logging
from typing import Any

import discord

logger = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_TEXT_CHARS = 8000
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
    name = attachment.filename.lower()
    return content_type.startswith("text/") or any(name.endswith(ext) for ext in TEXT_EXTENSIONS)


async def read_attachments(
    attachments: list[discord.Attachment], *, vision: bool, image_budget: list[int]
) -> tuple[list[str], list[dict[str, Any]]]:
    """``(notes, images)`` for a message's attachments: text files inlined and words on what was left out, and
    OpenAI-style image parts for vision models.

    ``image_budget`` is a one-item list shared across the reply chain so at most MAX_IMAGES images go in all.
    """
    notes: list[str] = []
    images: list[dict[str, Any]] = []
    for attachment in attachments:
        if _is_image(attachment):
            if not vision:
                notes.append(NO_VISION_NOTE)
            elif image_budget[0] <= 0 or attachment.size > MAX_IMAGE_BYTES:
                notes.append(f"[Image {attachment.filename} left out: too many or too large.]")
            else:
                data = await _read(attachment)
                if data is None:
                    notes.append(f"[Image {attachment.filename} could not be downloaded.]")
                    continue
                image_budget[0] -= 1
                encoded = base64.b64encode(data).decode()
                images.append(
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:{attachment.content_type};base64,{encoded}"},
                    }
                )
        elif _is_text(attachment) and attachment.size <= MAX_TEXT_CHARS * 4:
            data = await _read(attachment)
            body = (
                data.decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]
                if data is not None
                else "(unreadable)"
            )
            notes.append(f"[File {attachment.filename}]\n{body}\n[End of {attachment.filename}]")
        else:
            notes.append(
                f"[Attachment {attachment.filename} ({attachment.content_type or 'unknown type'}) not sent.]"
            )
    return notes, images


async def _read(attachment: discord.Attachment) -> bytes | None:
    try:
        return await attachment.read()
    except (discord.HTTPException, discord.NotFound) as exc:
        logger.info("could not read attachment %s: %s", attachment.id, exc)
        return None
