"""A local OpenAI-compatible chat server for tests and demos, on 127.0.0.1 in a background thread.

    with FakeLLM() as fake:                # or fake = FakeLLM().start(); ...; fake.stop()
        fake.reply_with("Hello there")     # default: "echo: <last user message>"
        fake.enqueue("500", "429")         # behaviours for the next calls, one each, then normal answers
        ...point openai/<model> at fake.url (api_base) with any api_key...
        fake.requests[0].model

Behaviours: "ok", any HTTP status as a string ("429", "500", "503", "401", "400"), "401-echo" (a 401 whose message
quotes the API key the request carried, as some providers and proxies do), "hang" (answer only after
``hang_seconds`` or ``stop()``), "slow" (wait ``token_delay`` before each streamed word, or words x delay before a
JSON answer), "stall" (stream the first word, then hang like "hang"), "cut" (stream ``cut_after`` words, then drop
the connection), "malformed" (200 with a body that is not JSON, or a stream chunk that is not), "silent" (accept
the request and never send a byte, like a dead peer; ``stop()`` releases it). Token counts are words: prompt =
words in all message texts, completion = words in the reply. A persistent failure is ``default_behaviour="429"``.

Standalone: ``python -m tests.fakes.llm_server --port 8766 [--reply TEXT]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support import BackgroundServer

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1", "gpt-4o")

_ERRORS = {
    400: ("invalid_request_error", "Bad request (fake)"),
    401: ("invalid_request_error", "Incorrect API key provided (fake)"),
    404: ("invalid_request_error", "The model does not exist (fake)"),
    429: ("rate_limit_error", "Rate limit reached (fake)"),
    500: ("server_error", "The server had an error (fake)"),
    502: ("server_error", "Bad gateway (fake)"),
    503: ("server_error", "The engine is overloaded (fake)"),
}


@dataclass
class RecordedRequest:
    model: str
    messages: list[dict[str, Any]]
    headers: dict[str, str]
    body: dict[str, Any]
    behaviour: str
    received_at: float = field(default_factory=time.monotonic)
    first_text_at: float | None = (
        None  # time.time() once the first word of a stream was written to the socket
    )

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def count_tokens(text: str) -> int:
    return len(text.split())


class FakeLLM(BackgroundServer):
    thread_name = "fake-llm"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_delay: float = 0.05,
        hang_seconds: float = 3600.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        default_behaviour: str = "ok",
        cut_after: int = 3,
    ) -> None:
        self.host = host
        self.port = port
        self.token_delay = token_delay
        self.hang_seconds = hang_seconds
        self.models = models
        self.default_behaviour = default_behaviour  # for calls with nothing enqueued
        self.cut_after = cut_after
        self.requests: list[RecordedRequest] = []
        self._reply: str | None = None
        self._reasoning: str | None = None
        self._queue: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None

    # --- control, from the test's thread ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def reply_with(self, text: str | None) -> None:
        """Answer every following call with ``text`` (None: back to the echo)."""
        self._reply = text

    def reason_with(self, text: str | None) -> None:
        """Think ``text`` before every following answer, as reasoning models behind an OpenAI-compatible API do:
        ``reasoning_content`` (in the message, or in deltas before the answer's), counted in the usage's
        ``completion_tokens_details.reasoning_tokens`` and in ``completion_tokens``. None: no reasoning."""
        self._reasoning = text

    def enqueue(self, *behaviours: str) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
        self._reply = None
        self._reasoning = None

    # --- server, on its own loop -----------------------------------------------------------------------------
    async def _astart(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        # A short shutdown timeout: a "hang" handler must not hold stop() for long.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def _astop(self) -> None:
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_behaviour(self) -> str:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default_behaviour

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "parley-fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        behaviour = self._next_behaviour()
        messages = body.get("messages") or []
        recorded = RecordedRequest(
            model=str(body.get("model", "")),
            messages=messages,
            headers=dict(request.headers),
            body=body,
            behaviour=behaviour,
        )
        self.requests.append(recorded)

        if behaviour == "401-echo":  # some providers and proxies quote the key they refuse
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key} (fake)"
            payload = {
                "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
            }
            return web.json_response(payload, status=401)
        if behaviour.isdigit():
            status = int(behaviour)
            kind, message = _ERRORS.get(status, ("server_error", f"HTTP {status} (fake)"))
            payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
            return web.json_response(payload, status=status)
        if behaviour == "silent":
            assert self._release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang_seconds)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if behaviour == "malformed" and not body.get("stream"):
            return web.Response(text='{"id": "chatcmpl-fake", "choices": [', content_type="application/json")
        if behaviour == "hang":
            assert self._release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang_seconds)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client gave up; nobody is listening

        last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = self._reply if self._reply is not None else f"echo: {_text(last_user.get('content'))}"
        words = text.split(" ")
        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and count_tokens(text) > limit:
            words = words[:limit]
            text = " ".join(words)
            finish_reason = "length"
        reasoning = self._reasoning
        thought = count_tokens(reasoning) if reasoning else 0
        usage: dict[str, Any] = {
            "prompt_tokens": sum(count_tokens(_text(m.get("content"))) for m in messages),
            "completion_tokens": count_tokens(text) + thought,
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": thought}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        delay = self.token_delay if behaviour == "slow" else 0.0
        completion_id = f"chatcmpl-fake-{next(self._ids)}"
        model = str(body.get("model", ""))

        if not body.get("stream"):
            await asyncio.sleep(delay * len(words))
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": text,
                                **({"reasoning_content": reasoning} if reasoning else {}),
                            },
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for i, word in enumerate((reasoning or "").split()):
            piece = word if i == 0 else " " + word
            await send([{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": None}])
        for i, word in enumerate(words):
            await asyncio.sleep(delay)
            piece = word if i == 0 else " " + word
            await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            if i == 0:
                recorded.first_text_at = time.time()
            if behaviour == "cut" and i + 1 >= self.cut_after:
                assert request.transport is not None
                request.transport.abort()  # mid-stream, no [DONE]: what a dropped connection looks like
                return response
            if behaviour == "malformed":
                await response.write(b"data: {not json\n\n")
                return response
            if behaviour == "stall":
                assert self._release is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), self.hang_seconds)
                return response
        await send([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
        if include_usage:
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Parley's fake OpenAI-compatible LLM server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--reply", default=None, help="answer every call with this text (default: echo)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed words")
    args = parser.parse_args()
    # With a delay every call is "slow": standalone use is for watching a stream arrive.
    behaviour = "slow" if args.token_delay else "ok"
    fake = FakeLLM(args.host, args.port, token_delay=args.token_delay, default_behaviour=behaviour)
    fake.reply_with(args.reply)
    fake.start()
    print(f"Fake LLM listening on {fake.url} (OPENAI_API_BASE={fake.url}, any OPENAI_API_KEY)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
