"""The baseline bot: discord.py with Parley's intents and cache settings, no Django, no database.

It answers the same target users with the same text (Parley's offline model, a stdlib-only module), showing the
typing indicator while it "thinks" and replying with the same allowed mentions, exactly the Discord calls Parley
makes for a message. What is left between the two is Parley's own work: the settings look-up, limits, the
conversation builder, usage rows, logging and the commands extension.

    DISCORD_BOT_TOKEN=... DISCORD_API_BASE=... DISCORD_GATEWAY_URL=... python -m bench.bare_bot --target 42

Prints one JSON line per shard ready and one when all shards are ready (``{"event": "ready", ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

import discord
import yarl

from llm.offline import respond

# Any non-empty prompt: the offline answer only says that one was seen, so the text matches Parley's.
SYSTEM_PROMPT = "You are a helpful assistant."
REPLY_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    wanted.dm_messages = True
    return wanted


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class BareBot(discord.AutoShardedClient):
    def __init__(self, *, shard_count: int | None, targets: set[int], guild_ready_timeout: float) -> None:
        super().__init__(
            intents=intents(),
            shard_count=shard_count,
            max_messages=500,
            member_cache_flags=discord.MemberCacheFlags.none(),
            chunk_guilds_at_startup=False,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
        )
        self.targets = targets

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # no 5 s wait between IDENTIFYs, like Parley with BOT_IDENTIFY_DELAY_SECONDS=0

    async def on_shard_ready(self, shard_id: int) -> None:
        say("shard_ready", shard=shard_id)

    async def on_ready(self) -> None:
        say("ready", guilds=len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.author.id not in self.targets:
            return
        name = getattr(message.author, "display_name", None) or message.author.name
        async with message.channel.typing():
            answer = respond(
                [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"{name}: {message.content}"},
                ]
            )
        await message.reply(answer.text, allowed_mentions=REPLY_MENTIONS)


async def main(args: argparse.Namespace) -> None:
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    bot = BareBot(
        shard_count=args.shard_count, targets=set(args.target), guild_ready_timeout=args.guild_ready_timeout
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with bot:
        runner = asyncio.create_task(bot.start(os.environ["DISCORD_BOT_TOKEN"]))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        await bot.close()
        waiter.cancel()
        if runner.done():
            runner.result()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bare_bot")
    parser.add_argument("--shard-count", type=int, default=None)
    parser.add_argument(
        "--target", type=int, action="append", default=[], help="a user id to answer (repeat)"
    )
    parser.add_argument("--guild-ready-timeout", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
