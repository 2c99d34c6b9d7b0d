"""``manage.py parley_doctor``: run Parley's system checks (tag ``parley``, config/checks.py) and say how to fix
what they find."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.checks import CheckMessage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from botcore.checks import planned_shard_count
from config.checks import TAG


class Command(BaseCommand):
    help = (
        "Check the configuration this environment gives Parley: Discord token and login, SITE_URL and hosts, "
        "database, Redis, LLM providers, shard count, production switches. Exits 1 when something is an error."
    )
    # The checks this command runs would stop it before it could explain them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shard-count",
            type=int,
            help="the --shard-count you will give runbot (default: what running bots reported)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["shard_count"] is not None and options["shard_count"] < 1:
            raise CommandError("--shard-count must be at least 1")
        planned = planned_shard_count.set(options["shard_count"])
        try:
            found = checks.run_checks(
                tags=[TAG], include_deployment_checks=True, databases=[DEFAULT_DB_ALIAS]
            )
        finally:
            planned_shard_count.reset(planned)
        # One topic's findings together, in the order its check gave them.
        for message in sorted(found, key=lambda m: str(m.obj)):
            self.stdout.write(self._format(message))
        errors = sum(m.is_serious() for m in found)
        warnings = sum(checks.WARNING <= m.level < checks.ERROR for m in found)
        summary = f"{errors} error(s), {warnings} warning(s)"
        if errors:
            raise CommandError(f"{summary}: fix the errors above before running Parley.")
        self.stdout.write(self.style.SUCCESS(f"{summary}: ready to run."))

    def _format(self, message: CheckMessage) -> str:
        if message.is_serious():
            label, style = "ERROR", self.style.ERROR
        elif message.level >= checks.WARNING:
            label, style = "WARNING", self.style.WARNING
        elif message.level >= checks.INFO:
            label, style = "info", None
        else:
            label, style = "ok", self.style.SUCCESS
        padded = f"{label:<8}"
        line = f"{style(padded) if style else padded}{message.obj}: {message.msg}"
        if message.id:
            line += f" [{message.id}]"
        if message.hint:
            line += f"\n{'':8}-> {message.hint}"
        return line
