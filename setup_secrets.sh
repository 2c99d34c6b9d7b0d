#!/usr/bin/env bash
# Write placeholder secret files under secrets/ (git-ignored). Replace each CHANGE_ME with the real value;
# the *_FILE variables and compose secrets read these files. A placeholder counts as "not configured".
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
write() {
  local file="secrets/$1.txt"
  if [ ! -e "$file" ]; then
    printf '%s\n' "$2" > "$file"
    chmod 600 "$file"
    echo "wrote $file"
  fi
}
write django_secret_key "$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
write postgres_password "$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
write discord_bot_token CHANGE_ME
write discord_client_secret CHANGE_ME
write openai_api_key CHANGE_ME
write anthropic_api_key CHANGE_ME
write gemini_api_key CHANGE_ME
write xai_api_key CHANGE_ME
