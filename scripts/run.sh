#!/usr/bin/env bash
# Serve the dashboard at http://127.0.0.1:8000 and, when a bot token is configured, run the bot beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

bot_pid=""
if [ -n "${DISCORD_BOT_TOKEN:-}" ] || { [ -n "${DISCORD_BOT_TOKEN_FILE:-}" ] && [ -s "${DISCORD_BOT_TOKEN_FILE}" ]; }; then
  "$PY" manage.py runbot &
  bot_pid=$!
  echo "bot started (pid $bot_pid)"
else
  echo "no DISCORD_BOT_TOKEN: serving the dashboard only"
fi
trap '[ -n "$bot_pid" ] && kill "$bot_pid" 2>/dev/null; exit 0' INT TERM EXIT
exec_args=(--host 127.0.0.1 --port "${PORT:-8000}")
"$PY" -m uvicorn config.asgi:application "${exec_args[@]}" --lifespan off
