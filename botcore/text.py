"""Splitting LLM output into Discord messages (2,000 characters each) without breaking code fences."""

from __future__ import annotations

import re

DISCORD_MESSAGE_LIMIT = 2000
_FENCE = re.compile(r"^```(\S*)", re.M)
# Preferred cut points, best first: a blank line, a line end, a sentence end, a space.
_BREAKS = ("\n\n", "\n", ". ", "! ", "? ", " ")


def _open_fence(text: str) -> str | None:
    """The language tag of a code fence left open at the end of ``text`` ('' for none), else None."""
    language = None
    for match in _FENCE.finditer(text):
        language = match.group(1) if language is None else None
    return language


def _cut(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in _BREAKS:
        index = window.rfind(separator)
        # A cut in the first fifth of the window would leave a uselessly short message.
        if index > limit // 5:
            return index + len(separator)
    return limit


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters on line, sentence or word boundaries.

    A code block cut in two is closed at the end of one chunk and reopened (same language) at the start of the
    next, so each message renders on its own.
    """
    text = text.strip()
    if not text:
        return []
    chunks: list[str] = []
    prefix = ""
    while text:
        reserve = len("\n```")
        body_limit = limit - len(prefix) - reserve
        if len(prefix) + len(text) <= limit:
            chunks.append(prefix + text)
            break
        cut = _cut(text, body_limit)
        piece, text = text[:cut].rstrip(), text[cut:].lstrip("\n")
        chunk = prefix + piece
        language = _open_fence(chunk)
        if language is not None:
            chunk += "\n```"
            prefix = f"```{language}\n"
        else:
            prefix = ""
        chunks.append(chunk)
    return chunks
