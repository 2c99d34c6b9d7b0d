"""The playground's socket (ADMIN and above): the answer arrives token by token, and a stop message cancels it.

The browser sends ``{"type": "run", "message", "system_prompt", "model"}`` or ``{"type": "stop"}`` and
receives ``token`` messages (``text``), then one of ``done`` (the reply's model, tokens, cost and latency),
``error`` (in words, with the provider's own under ``detail``), ``invalid`` (the form's errors) or ``stopped``.
The call goes through ``llm.answering.answer`` like the form's POST (llm/views.py): same settings, budget and
usage row; a stopped answer's row says it was interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from guilds.dashboard import guild_for_user
from guilds.models import Membership
from guilds.sockets import CLOSE_FORBIDDEN, guild_for_socket
from llm.answering import AnswerSettings, answer
from llm.forms import PlaygroundForm
from llm.limits import LimitGate
from llm.prompting import Turn
from llm.views import playground_asker, playground_result, playground_settings

ADMIN = Membership.Role.ADMIN


def _prepare(user: User, guild_id: int, content: dict[str, Any]) -> AnswerSettings | dict[str, list[str]]:
    """The draft's settings, or the form's errors. The role is checked again: it may have changed since the
    socket opened."""
    guild, _ = guild_for_user(user, guild_id, min_role=ADMIN)
    data = {name: content.get(name) or "" for name in ("message", "system_prompt", "model")}
    form = PlaygroundForm(data, current=guild.settings)
    if not form.is_valid():
        return {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    return playground_settings(guild, form.cleaned_data)


class PlaygroundConsumer(AsyncJsonWebsocketConsumer):
    task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        access = await guild_for_socket(self, ADMIN)
        if access is None:
            return
        self.guild_id = access[0].discord_id
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop":
            if self.task is not None:
                self.task.cancel()
            return
        if kind != "run":
            return
        if self.task is not None and not self.task.done():
            await self.send_json(
                {"type": "error", "error": "An answer is already on its way: stop it first."}
            )
            return
        user = self.scope["user"]
        try:
            draft = await database_sync_to_async(_prepare)(user, self.guild_id, content)
        except (Http404, PermissionDenied):  # no longer a member, or the role was lowered
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if isinstance(draft, dict):
            await self.send_json({"type": "invalid", "errors": draft})
            return
        self.task = asyncio.create_task(self._answer(draft, user, str(content.get("message"))))

    async def _deliver(self, pieces: AsyncIterator[str]) -> None:
        async for piece in pieces:
            await self.send_json({"type": "token", "text": piece})

    async def _answer(self, draft: AnswerSettings, user: User, message: str) -> None:
        try:
            outcome = await answer(
                settings=draft,
                turns=[Turn(role="user", text=message)],
                asker=playground_asker(user),
                gate=LimitGate(),
                deliver=self._deliver,
                streaming=True,
                record_later=False,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # the browser may be gone already
                await self.send_json({"type": "stopped"})
            raise
        result = playground_result(outcome, draft, operator=self.scope["user"].is_staff)
        if "error" in result:
            await self.send_json({"type": "error", **result})
            return
        reply = result["reply"]
        await self.send_json(
            {
                "type": "done",
                "model_name": result["model_name"],
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "cost_usd": f"{reply.cost_usd:.6f}",
                "latency_ms": reply.latency_ms,
                "reasoning": reply.reasoning,
                "reasoning_tokens": reply.reasoning_tokens,
            }
        )

    async def disconnect(self, code: int) -> None:
        if self.task is not None:
            self.task.cancel()
