#!/usr/bin/env bash
# Serve the dashboard at http://127.0.0.1:$PORT (default 8000) and, when a bot token is configured, run the bot
# beside it. Variables come from the environment, then from .env. When either process stops, the other is stopped
# too and the script exits non-zero, saying which one stopped: a dead bot must not go unnoticed behind a dashboard
# that still answers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

# .env's variables that the environment does not set (the Python processes would read them anyway; this shell
# needs them too, for PORT and the bot token).
exports=$("$PY" -m config.env)
eval "$exports"

# As settings.DISCORD_BOT_TOKEN reads it: the variable, or a file that is not `make secrets`' placeholder.
token_configured() {
  [ -n "${DISCORD_BOT_TOKEN:-}" ] && return 0
  local file="${DISCORD_BOT_TOKEN_FILE:-}"
  [ -n "$file" ] && [ -s "$file" ] && ! grep -q '^[[:space:]]*CHANGE_ME' "$file"
}

web_pid=""
bot_pid=""
stop_all() {
  for pid in $web_pid $bot_pid; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap 'stop_all; exit 0' INT TERM HUP

"$PY" -m uvicorn config.asgi:application --host 127.0.0.1 --port "${PORT:-8000}" --lifespan off &
web_pid=$!
if token_configured; then
  "$PY" manage.py runbot &
  bot_pid=$!
  echo "bot started (pid $bot_pid)"
else
  echo "no DISCORD_BOT_TOKEN: serving the dashboard only"
fi

# Polled rather than `wait -n`, which the bash of macOS (3.2) does not have.
while kill -0 "$web_pid" 2>/dev/null && { [ -z "$bot_pid" ] || kill -0 "$bot_pid" 2>/dev/null; }; do
  sleep 1
done
if [ -n "$bot_pid" ] && ! kill -0 "$bot_pid" 2>/dev/null; then
  status=0
  wait "$bot_pid" || status=$?
  echo "run.sh: the bot stopped (exit status $status), so the dashboard is stopped too; the bot's last lines above say why" >&2
else
  status=0
  wait "$web_pid" || status=$?
  echo "run.sh: the dashboard stopped (exit status $status)${bot_pid:+, so the bot is stopped too}" >&2
fi
stop_all
exit $((status == 0 ? 1 : status))
