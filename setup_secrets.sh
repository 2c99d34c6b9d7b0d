#!/usr/bin/env bash
# Write placeholder secret files under secrets/ (git-ignored), and an empty .env if there is none (compose.yaml
# reads it). Replace each CHANGE_ME with the real value; the *_FILE variables and compose secrets read these files.
# A placeholder counts as "not configured". Files that exist keep their content; rerun it to fix their modes.
#
# Modes: the folder is 700, so no other user of the host gets in; the files are 644. Compose mounts each file by
# itself at /run/secrets/<name>, keeping the host's owner and mode (it ignores the long syntax's uid/gid/mode for
# file secrets, in Compose v2 as in docker-compose 1.29), and the containers run as their own users (parley,
# postgres) who do not own the file: a 600 file cannot be read there. The folder's 700 does not apply inside the
# container, where the file is mounted without it.
set -euo pipefail
cd "$(dirname "$0")"
dir=secrets
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
write() {
  local file="$dir/$1.txt"
  if [ ! -e "$file" ]; then
    printf '%s\n' "$2" > "$file"
    echo "wrote $file"
  fi
  chmod 644 "$file"
}
write django_secret_key "$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
write postgres_password "$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
write discord_bot_token CHANGE_ME
write discord_client_secret CHANGE_ME
write openai_api_key CHANGE_ME
write anthropic_api_key CHANGE_ME
write gemini_api_key CHANGE_ME
write xai_api_key CHANGE_ME
if [ ! -e .env ]; then
  : > .env
  echo "wrote an empty .env (the variables of .env.example go there)"
fi
