"""Django's ``flush``, able to empty the append-only audit log (audit/migrations/0004_append_only_triggers.py).

It empties every table of the database, the audit log included, which the triggers refuse; this command lifts
them for its own transaction only: drop, flush, install again, then commit. Test runs use it between
transactional tests.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

from audit import triggers


class Command(flush.Command):
    help = flush.Command.help + " The audit log too (its append-only triggers are lifted for the flush only)."

    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        if options["interactive"]:
            # Asked before the transaction starts: no lock is held while an operator reads the question.
            name = connection.settings_dict["NAME"]
            answer = input(
                f'This will IRREVERSIBLY DESTROY all data in the "{name}" database, the audit log included.\n'
                "Type 'yes' to continue, or 'no' to cancel: "
            )
            if answer != "yes":
                self.stdout.write("Flush cancelled.")
                return
        with transaction.atomic(using=connection.alias):
            lifted = triggers.installed(connection)
            if lifted:
                triggers.remove(connection)
            super().handle(**{**options, "interactive": False})
            if lifted:
                triggers.install(connection)
