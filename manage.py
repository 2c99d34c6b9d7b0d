#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["runbot"]:  # the bot process: the settings leave the web-only apps out
        os.environ.setdefault("PARLEY_PROCESS", "bot")
    from django.core.management import execute_from_command_line

    from config.env import one_line_errors

    with one_line_errors():  # a malformed variable in the environment or .env: one line naming it
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
