"""Streaming: Parley streaming an OpenAI-compatible model's answer into Discord by editing its message.

FakeLLM (in-thread) sends TOKENS words at PACE words/s; ``runbot`` talks to it through litellm
(``openai/gpt-4o-mini``, ``OPENAI_API_BASE`` = the fake). The Discord side is FakeDiscord with Discord's
per-channel message buckets enforced (``LimitedDiscord``: 5 sends and 5 edits per 5 s per channel, truthful
``X-RateLimit-*`` headers, a 429 to whoever goes over), since the stock fake always reports 49 requests left and
so could never show a 429.

Streams run at once: STREAMS in channels of their own, and STREAMS sharing one channel (where the edit bucket,
not Parley's 1.2 s interval, is the limit). Per stream:
- first token -> first Discord message: from the moment FakeLLM wrote the stream's first word to the socket (its
  recorded ``first_text_at``: the earliest the bot could see it, on the loopback) to the moment FakeDiscord
  received the message's POST. Both clocks are this process's wall clock;
- edits: the gaps between the message and its successive edits (the goal: none under 1.2 s);
- 429s: every REST answer of status 429.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from typing import Any

from aiohttp import web

from bench.bots import ParleyBot
from bench.common import Workdir, create_database, django_task
from bench.report import Goal, Report, cli, fmt, median, table
from tests.fakes.discord_server import FakeDiscord, _json
from tests.fakes.llm_server import FakeLLM
from tests.support import wait_until

TOKENS, QUICK_TOKENS = 300, 60
PACE = 20.0  # tokens per second
STREAMS, QUICK_STREAMS = 3, 2
MODEL = "openai/gpt-4o-mini"
TARGET_ID = 434343434343434343
FIRST_MESSAGE_GOAL = 1.5
EDIT_INTERVAL_GOAL = 1.2


class LimitedDiscord(FakeDiscord):
    """FakeDiscord that enforces per-channel buckets on sending and editing messages, as Discord does."""

    LIMIT, WINDOW = 5, 5.0
    _LIMITED = (
        ("POST", re.compile(r"^/api/v10/channels/(\d+)/messages$")),
        ("PATCH", re.compile(r"^/api/v10/channels/(\d+)/messages/\d+$")),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        key = next(
            (
                (method, m.group(1))
                for method, rx in self._LIMITED
                if request.method == method and (m := rx.match(request.path))
            ),
            None,
        )
        if key is None:
            return await super()._middleware(request, handler)
        now = time.time()
        start, used = self._windows.get(key, (now, 0))
        if now - start >= self.WINDOW:
            start, used = now, 0
        reset_after = start + self.WINDOW - now
        if used >= self.LIMIT:
            with self._lock:
                self.requests.append(
                    {"method": request.method, "path": request.path, "status": 429, "t": now}
                )
            headers = self._headers(key, 0, reset_after)
            headers |= {"Retry-After": str(math.ceil(reset_after)), "X-RateLimit-Scope": "user"}
            body = {"message": "You are being rate limited.", "retry_after": reset_after, "global": False}
            return _json(body, 429, headers)
        self._windows[key] = (start, used + 1)
        response = await super()._middleware(request, handler)
        if 200 <= response.status < 300:
            response.headers.update(self._headers(key, self.LIMIT - used - 1, reset_after))
        return response

    def _headers(self, key: tuple[str, str], remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"bench-{key[0].lower()}-messages",
            "Via": "1.1 google",
        }


def _stream_stats(fake: FakeDiscord, llm: FakeLLM, asked: dict[int, str], text: str) -> list[dict[str, Any]]:
    """One row per asked message: its first-token delay, edit gaps and whether the final text is complete."""
    out = []
    for msg_id, label in asked.items():
        reply = next((m for m in fake.sent_messages if m["reply_to"] == msg_id), None)
        request = next((r for r in llm.requests if label in str(r.messages[-1].get("content"))), None)
        if reply is None or request is None or request.first_text_at is None:
            out.append({"label": label, "missing": True})
            continue
        first_token = request.first_text_at
        times = [reply["t"], *sorted(e["t"] for e in fake.edits if e["id"] == reply["id"])]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        out.append(
            {
                "label": label,
                "missing": False,
                "first_message": reply["t"] - first_token,
                "edits": len(times) - 1,
                "min_gap": min(gaps) if gaps else math.nan,
                "median_gap": median(gaps) if gaps else math.nan,
                "complete": fake.messages[reply["id"]]["content"] == text,
            }
        )
    return out


def run(quick: bool) -> Report:
    tokens, streams = (QUICK_TOKENS, QUICK_STREAMS) if quick else (TOKENS, STREAMS)
    text = " ".join(f"t{i}" for i in range(tokens))  # short words: the whole answer fits one message
    with Workdir("streaming") as workdir:
        db = create_database("sqlite", workdir)
        try:
            with LimitedDiscord() as fake, FakeLLM(token_delay=1 / PACE, default_behaviour="slow") as llm:
                guild = fake.add_guild(
                    name="Stream Guild", channels=[f"solo-{i}" for i in range(streams)] + ["shared"]
                )
                channels = [int(c["id"]) for c in guild["channels"]]
                django_task(
                    workdir.env(**db.env),
                    "guild_settings",
                    discord_id=int(guild["id"]),
                    model=MODEL,
                    streaming=True,
                )
                env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": llm.url}
                with ParleyBot(fake, workdir, db, targets=[TARGET_ID], **env) as bot:
                    bot.wait_ready()
                    author = fake.add_user("streamer", user_id=TARGET_ID)
                    llm.reply_with("ready")  # warm-up: litellm imported, settings loaded, connections open
                    fake.send_user_message(channels[0], "warm up", author=author)
                    wait_until(lambda: fake.sent_messages, 120, f"warm-up reply\n{bot.tail()}")
                    time.sleep(1.5)
                    fake.reset_records()
                    llm.reset()
                    llm.reply_with(text)
                    asked: dict[int, str] = {}
                    for i in range(streams):
                        asked[
                            int(fake.send_user_message(channels[i], f"solo stream {i}", author=author)["id"])
                        ] = f"solo stream {i}"
                        asked[
                            int(
                                fake.send_user_message(channels[-1], f"shared stream {i}", author=author)[
                                    "id"
                                ]
                            )
                        ] = f"shared stream {i}"
                    expected = tokens / PACE
                    wait_until(
                        lambda: all(
                            any(
                                m["reply_to"] == mid and fake.messages[m["id"]]["content"] == text
                                for m in fake.sent_messages
                            )
                            for mid in asked
                        ),
                        expected * 4 + 30,
                        f"complete streamed answers\n{bot.tail()}",
                        interval=0.2,
                    )
                    rows = _stream_stats(fake, llm, asked, text)
                    limited = [r for r in fake.requests if r.get("status") == 429]
        finally:
            db.drop()
    return report(rows, len(limited), tokens, streams)


def report(rows: list[dict[str, Any]], too_many: int, tokens: int, streams: int) -> Report:
    done = [r for r in rows if not r["missing"]]
    table_rows = [
        [
            r["label"],
            fmt(r["first_message"] * 1000, 0),
            r["edits"],
            fmt(r["median_gap"], 2),
            fmt(r["min_gap"], 2),
            "yes" if r["complete"] else "**no**",
        ]
        for r in done
    ]
    first = [r["first_message"] for r in done]
    gaps = [r["min_gap"] for r in done if not math.isnan(r["min_gap"])]
    goals = [
        Goal(
            "first token -> first Discord message (worst stream)",
            f"{fmt(max(first) * 1000 if first else None)} ms",
            "",
            "",
            f"≤ {FIRST_MESSAGE_GOAL:g} s",
            bool(first) and max(first) <= FIRST_MESSAGE_GOAL,
        ),
        Goal(
            "shortest gap between edits of one message",
            f"{fmt(min(gaps) if gaps else None, 2)} s",
            "",
            "",
            f"≥ {EDIT_INTERVAL_GOAL:g} s",
            bool(gaps) and min(gaps) >= EDIT_INTERVAL_GOAL,
        ),
        Goal("429 answers from Discord", str(too_many), "", "", "0", too_many == 0),
    ]
    if len(done) < len(rows):
        goals.append(Goal("streams answered", f"{len(done)}/{len(rows)}", "", "", "all", False))
    notes = [
        f"{tokens} tokens at {PACE:g} tokens/s ({tokens / PACE:g} s a stream); {streams} streams alone in a channel "
        f"and {streams} sharing one, all at once, through litellm to the local FakeLLM.",
        f"The fake enforces {LimitedDiscord.LIMIT} sends and {LimitedDiscord.LIMIT} edits per "
        f"{LimitedDiscord.WINDOW:g} s per channel with truthful headers; in the shared channel the bucket allows one "
        f"edit a second for {streams} messages, so their gaps are longer than Parley's own 1.2 s interval.",
        "There is no baseline bot here: the goals are absolute (Discord's limits and the time to first text). The "
        "first-token figure is measured at both ends (the fake provider's write, the fake Discord's receipt), "
        "not computed from a pace.",
    ]
    detail = table(
        [
            "stream",
            "first token -> message (ms)",
            "edits",
            "median gap (s)",
            "min gap (s)",
            "final text complete",
        ],
        table_rows,
    )
    return Report("streaming", "4. Streaming", tables=[detail], goals=goals, notes=notes)


if __name__ == "__main__":
    cli("streaming", run)
