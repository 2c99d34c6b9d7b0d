"""A reasoning model's thinking, kept apart from its answer.

Providers hand it over in two ways: a field of its own (``reasoning_content``, which litellm passes on for
DeepSeek, Anthropic's extended thinking, xAI and OpenAI-compatible servers), or inside the answer's text between
``<think>`` and ``</think>`` (local models served through an OpenAI-compatible API). :class:`ThinkSplitter` takes the
second out of a text that arrives in pieces, tags split across pieces included, so that :mod:`llm.client` never
hands raw thinking to anyone: ``Reply.text`` is the answer, ``Reply.reasoning`` the thinking.

What a server shows of it is its ``reasoning_display`` setting: nothing (``hidden``, the default) or, in Discord, a
collapsed spoiler above the answer (``spoiler``, :func:`spoiler`).
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"
HIDDEN, SPOILER = "hidden", "spoiler"
CHOICES = [(HIDDEN, "Hidden"), (SPOILER, "Shown as a collapsed spoiler above the answer")]
SPOILER_LIMIT = 900  # characters of thinking shown: the answer, not the thinking, is what the message is for


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag`` (so must wait for more)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Feed the text as it arrives; get back what may be shown. ``thought`` holds what was inside the tags."""

    def __init__(self) -> None:
        self.thought = ""
        self._inside = False
        self._pending = ""
        self._shown_any = False

    def feed(self, piece: str) -> str:
        text, self._pending = self._pending + piece, ""
        shown: list[str] = []
        while text:
            if self._inside:
                tag = CLOSE
            elif (
                self._shown_any
            ):  # the answer has begun: a "<think>" in it is text (a question about the tag)
                shown.append(text)
                break
            else:
                tag = OPEN
                # Templates that open the block in the prompt leave only its end in the answer: all before it
                # (in this piece: a stream shows what came before) was thinking.
                if CLOSE in text and (OPEN not in text or text.index(CLOSE) < text.index(OPEN)):
                    self._inside, tag = True, CLOSE
            at = text.find(tag)
            if tag == OPEN and at > 0 and text[:at].strip():  # a block opens the answer or is not one at all
                at = -1
            if at < 0:
                keep = _partial_tag(text, tag)
                body, self._pending = text[: len(text) - keep], text[len(text) - keep :]
                self._take(body, shown)
                break
            self._take(text[:at], shown)
            text = text[at + len(tag) :]
            self._inside = not self._inside
            if not self._inside:  # the answer after the thinking starts without its blank lines
                text = text.lstrip() if not self._shown_any else text
        return "".join(shown)

    def _take(self, body: str, shown: list[str]) -> None:
        if self._inside:
            self.thought += body
            return
        if not self._shown_any:
            body = body.lstrip() if self.thought else body
        if body:
            self._shown_any = True
            shown.append(body)

    def flush(self) -> str:
        """The end of the text: a partial tag that never completed was text after all (or thinking, inside)."""
        rest, self._pending = self._pending, ""
        if self._inside:
            self.thought += rest
            return ""
        return rest


def spoiler(thinking: str) -> str:
    """The thinking as a Discord spoiler block to put above the answer ("" when there is none)."""
    # Inside a spoiler, "||" would end it and a code fence would swallow the rest of the message.
    text = " ".join(thinking.split()).replace("||", "|\u200b|").replace("```", "'''")
    if not text:
        return ""
    if len(text) > SPOILER_LIMIT:  # cut after escaping; the ellipsis keeps a cut "|" off the closing bars
        text = text[: SPOILER_LIMIT - 1].rstrip() + "…"
    return f"-# Reasoning\n||{text}||\n\n"
