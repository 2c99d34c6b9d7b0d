"""``manage.py parley_doctor``: check the configuration before running Parley (the logic is in config/doctor.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.doctor import Finding, run_checks

_LABELS = {"ok": "ok", "info": "info", "warning": "WARNING", "error": "ERROR"}


class Command(BaseCommand):
    help = (
        "Check the configuration this environment gives Parley: Discord token and login, SITE_URL and hosts, "
        "database, Redis, LLM providers, shard count, production switches. Exits 1 when something is an error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--shard-count",
            type=int,
            help="the --shard-count you will give runbot (default: what running bots reported)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["shard_count"] is not None and options["shard_count"] < 1:
            raise CommandError("--shard-count must be at least 1")
        findings = run_checks(shard_count=options["shard_count"])
        for finding in findings:
            self.stdout.write(self._format(finding))
        errors = sum(f.level == "error" for f in findings)
        warnings = sum(f.level == "warning" for f in findings)
        summary = f"{errors} error(s), {warnings} warning(s)"
        if errors:
            raise CommandError(f"{summary}: fix the errors above before running Parley.")
        self.stdout.write(self.style.SUCCESS(f"{summary}: ready to run."))

    def _format(self, finding: Finding) -> str:
        label = f"{_LABELS[finding.level]:<8}"
        style = {"error": self.style.ERROR, "warning": self.style.WARNING, "ok": self.style.SUCCESS}.get(
            finding.level
        )
        line = f"{style(label) if style else label}{finding.topic}: {finding.message}"
        if finding.fix and finding.level != "ok":
            line += f"\n{'':8}-> {finding.fix}"
        return line
