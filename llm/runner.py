"""Provider attempts in a child process, for processes that must not load litellm (the web workers).

Importing litellm costs about 7 s of CPU and its response parsing holds the interpreter: inside a web worker that
would stall every other request the worker serves. So the web process hands each attempt, as the litellm
arguments it built from its own settings (:func:`llm.providers.completion_kwargs`), to one long-lived child per
process (``python -m llm.runner``), over the child's stdin and stdout as JSON lines, and reads back text pieces,
token counts, the price and typed errors. Retries, the fallback model, limits and usage rows stay with the caller
(:mod:`llm.client`, :mod:`llm.answering`); the child only runs :func:`llm.providers.complete` and
:class:`llm.providers.LiteLLMStream`.

Messages, parent to child: ``{"id", "op": "complete" | "stream", "model", "kwargs"}`` and ``{"id", "op":
"cancel"}``. Child to parent: ``{"id", "type": "delta", "text"}``, ``{"id", "type": "end", ...}`` (the
:class:`~llm.providers.Completion` fields) and ``{"id", "type": "error", "kind", "message", ...}``.

The child starts on the first attempt (or :func:`start`), imports litellm at once, and exits when its parent's
pipe closes or after ``LLM_RUNNER_IDLE_SECONDS`` without work; the next attempt starts a new one. A child that
dies mid-call fails that attempt with a retryable error, which :mod:`llm.client` retries like a dropped connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from llm import providers
from llm.errors import LLMBadRequest, LLMError, LLMProviderError, LLMRateLimited, LLMTimeout, LLMUnavailable
from llm.providers import Completion

logger = logging.getLogger(__name__)

_ERRORS: dict[str, type[LLMError]] = {
    cls.kind: cls for cls in (LLMTimeout, LLMRateLimited, LLMProviderError, LLMUnavailable, LLMBadRequest)
}
# The child's first answer waits for its litellm import: allow for it on top of the attempt's own timeout.
_START_ALLOWANCE_SECONDS = 60.0


def _idle_seconds() -> float:
    return float(getattr(settings, "LLM_RUNNER_IDLE_SECONDS", 600.0))


def _error_fields(exc: LLMError) -> dict[str, Any]:
    return {
        "kind": exc.kind,
        "message": exc.message,
        "model": exc.model,
        "status_code": exc.status_code,
        "retryable": exc.retryable,
        "retry_after": exc.retry_after,
    }


def _error_from(msg: dict[str, Any]) -> LLMError:
    cls = _ERRORS.get(msg.get("kind", ""), LLMProviderError)
    return cls(
        msg.get("message") or "The model call failed",
        model=msg.get("model"),
        status_code=msg.get("status_code"),
        retryable=msg.get("retryable"),
        retry_after=msg.get("retry_after"),
    )


def _completion_fields(done: Completion) -> dict[str, Any]:
    return {
        "input_tokens": done.input_tokens,
        "output_tokens": done.output_tokens,
        "finish_reason": done.finish_reason,
        "cost_usd": None if done.cost_usd is None else str(done.cost_usd),
        "reasoning": done.reasoning,
        "reasoning_tokens": done.reasoning_tokens,
    }


def _cost(msg: dict[str, Any]) -> Decimal | None:
    return None if msg.get("cost_usd") is None else Decimal(msg["cost_usd"])


# --- the parent's side -------------------------------------------------------------------------------------------
class _Call:
    """One attempt in flight: the child's messages for it, delivered to the caller's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def put(self, msg: dict[str, Any]) -> None:
        # RuntimeError: the caller's loop has closed, and nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, msg)


class _Child:
    def __init__(self) -> None:
        base = Path(getattr(settings, "BASE_DIR", Path.cwd()))
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell, no user input
            [sys.executable, "-m", "llm.runner", "--idle-seconds", str(_idle_seconds())],
            cwd=base,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )
        self.calls: dict[int, _Call] = {}
        self.write_lock = threading.Lock()
        threading.Thread(target=self._read, name="llm-runner-reader", daemon=True).start()
        logger.info("LLM runner started (pid %d)", self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None and self.proc.stdout is not None and not self.proc.stdout.closed

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            call = self.calls.get(msg.get("id"))
            if call is not None:
                call.put(msg)
        self.proc.wait()
        stopped = {"type": "error", "kind": "provider_error", "retryable": True}
        stopped["message"] = f"The model runner stopped (exit code {self.proc.returncode})"
        for call in list(self.calls.values()):
            call.put(stopped)

    def send(self, msg: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        data = (json.dumps(msg) + "\n").encode()
        with self.write_lock:
            stdin.write(data)
            stdin.flush()


_child: _Child | None = None
_child_lock = threading.Lock()
_ids = itertools.count(1)


def start() -> None:
    """Start the child now (it imports litellm straight away), if it is not running."""
    _running()


def _running() -> _Child:
    global _child
    with _child_lock:
        if _child is None or not _child.alive():
            _child = _Child()
        return _child


class _Attempt:
    """Send one attempt to the child; read its messages in order."""

    def __init__(self, op: str, model: str, kwargs: dict[str, Any]) -> None:
        self.id = next(_ids)
        self.model = model
        self.wait = float(kwargs["timeout"])
        self.first = True
        self.call = _Call()
        self.child = _running()
        self.child.calls[self.id] = self.call
        try:
            self.child.send({"id": self.id, "op": op, "model": model, "kwargs": kwargs})
        except OSError as exc:
            self.finish()
            problem = f"The model runner is not reachable: {exc}"
            raise LLMProviderError(problem, model=model, retryable=True) from exc

    async def next(self) -> dict[str, Any]:
        # The child applies the attempt's timeout itself; this one only catches a child that stopped answering.
        wait = self.wait * 2 + (_START_ALLOWANCE_SECONDS if self.first else 0)
        self.first = False
        try:
            msg = await asyncio.wait_for(self.call.queue.get(), wait)
        except TimeoutError:
            self.cancel()
            raise LLMTimeout(f"No answer within {self.wait:g} s", model=self.model) from None
        if msg["type"] == "error":
            self.finish()
            raise _error_from({"model": self.model} | msg)
        if msg["type"] == "end":
            self.finish()
        return msg

    def cancel(self) -> None:
        if self.child.calls.pop(self.id, None) is not None:
            with contextlib.suppress(OSError):  # the child is gone, and the attempt with it
                self.child.send({"id": self.id, "op": "cancel"})

    def finish(self) -> None:
        self.child.calls.pop(self.id, None)


async def complete(model: str, kwargs: dict[str, Any]) -> Completion:
    """:func:`llm.providers.complete`, run by the child."""
    attempt = _Attempt("complete", model, kwargs)
    try:
        msg = await attempt.next()
    except asyncio.CancelledError:
        attempt.cancel()
        raise
    return Completion(
        msg["text"],
        msg["input_tokens"],
        msg["output_tokens"],
        msg["finish_reason"],
        _cost(msg),
        msg["reasoning"],
        msg["reasoning_tokens"],
    )


class RunnerStream:
    """:class:`llm.providers.LiteLLMStream`, run by the child: the same interface, fed by its messages."""

    def __init__(self, model: str, kwargs: dict[str, Any]) -> None:
        self.model = model
        self.kwargs = kwargs
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.cost_usd: Decimal | None = None
        self.reasoning = ""
        self.reasoning_tokens: int | None = None
        self._attempt: _Attempt | None = None
        self._first: dict[str, Any] | None = None

    async def open(self) -> RunnerStream:
        self._attempt = _Attempt("stream", self.model, self.kwargs)
        try:
            # Read up to the first text (or the end), as LiteLLMStream does, so failures before it can be retried.
            self._first = await self._attempt.next()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        return self

    async def deltas(self) -> AsyncGenerator[str, None]:
        attempt, msg = self._attempt, self._first
        assert attempt is not None and msg is not None
        while msg["type"] == "delta":
            self.reasoning += msg.get("reasoning", "")
            yield msg["text"]
            msg = await attempt.next()
        self.input_tokens, self.output_tokens = msg["input_tokens"], msg["output_tokens"]
        self.finish_reason, self.cost_usd = msg["finish_reason"], _cost(msg)
        self.reasoning += msg["reasoning"]
        self.reasoning_tokens = msg["reasoning_tokens"]

    async def aclose(self) -> None:
        if self._attempt is not None:
            self._attempt.cancel()


# --- the child's side --------------------------------------------------------------------------------------------
class _Server:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.idle = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, msg: dict[str, Any]) -> None:
        self.out.write(json.dumps(msg) + "\n")
        self.out.flush()

    def handle(self, msg: dict[str, Any]) -> None:
        call_id = msg["id"]
        if msg["op"] == "cancel":
            task = self.tasks.get(call_id)
            if task is not None:
                task.cancel()
            return
        run = self._complete if msg["op"] == "complete" else self._stream
        task = self.loop.create_task(run(call_id, msg["model"], msg["kwargs"]))
        self.tasks[call_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(call_id, None))

    async def _complete(self, call_id: int, model: str, kwargs: dict[str, Any]) -> None:
        try:
            done = await providers.complete(model, kwargs)
        except Exception as exc:
            self._fail(call_id, model, exc)
            return
        self.emit({"id": call_id, "type": "end", "text": done.text} | _completion_fields(done))

    async def _stream(self, call_id: int, model: str, kwargs: dict[str, Any]) -> None:
        source = providers.LiteLLMStream(model, kwargs)
        try:
            await source.open()
            sent = 0  # of source.reasoning: what is new goes with the next message
            async for text in source.deltas():
                self.emit(
                    {"id": call_id, "type": "delta", "text": text, "reasoning": source.reasoning[sent:]}
                )
                sent = len(source.reasoning)
            done = Completion(
                "",
                source.input_tokens,
                source.output_tokens,
                source.finish_reason,
                source.cost_usd,
                source.reasoning[sent:],
                source.reasoning_tokens,
            )
            self.emit({"id": call_id, "type": "end"} | _completion_fields(done))
        except Exception as exc:
            self._fail(call_id, model, exc)
        finally:
            await source.aclose()

    def _fail(self, call_id: int, model: str, exc: Exception) -> None:
        if not isinstance(exc, LLMError):
            logger.exception("the LLM runner failed on an attempt")
            exc = LLMProviderError(
                f"The model runner failed: {type(exc).__name__}", model=model, retryable=False
            )
        self.emit({"id": call_id, "type": "error"} | _error_fields(exc))


async def _serve(out: IO[str], idle_seconds: float) -> None:
    providers.run_inline()
    server = _Server(out)
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            server.loop.call_soon_threadsafe(lines.put_nowait, line)
        server.loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, name="llm-runner-stdin", daemon=True).start()
    await providers.litellm_async()  # straight away: the first attempt should not wait for it
    while True:
        try:
            line = await asyncio.wait_for(lines.get(), idle_seconds)
        except TimeoutError:
            if server.tasks:
                continue
            logger.info("LLM runner idle for %g s: exiting", idle_seconds)
            return
        if line is None:  # the parent has gone
            return
        try:
            server.handle(json.loads(line))
        except (ValueError, KeyError):
            logger.warning("the LLM runner got a message it cannot read")


def main() -> None:
    # Below the web worker's priority: on a busy host the worker's own requests come first, and the import and
    # the parsing here (CPU) wait; the model calls themselves are network waits, which niceness does not slow.
    os.nice(10)
    parser = argparse.ArgumentParser(description="Parley's LLM runner (started by the web process itself)")
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    args = parser.parse_args()
    # stdout carries the protocol: keep it for that, and send anything else printed (logs included) to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    asyncio.run(_serve(out, args.idle_seconds))


if __name__ == "__main__":
    main()
