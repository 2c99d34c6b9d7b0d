#!/usr/bin/env bash
# `make test-docker`: run the production stack for real on this machine's Docker engine and check it.
#
# Set-up (each step timed):
#   tools    apt-get install docker.io, docker-compose, debootstrap when missing (says so)
#   engine   a running engine is used; else dockerd starts here without bridge or NAT (log: var/docker-test/)
#            and is stopped at the end
#   images   scripts/docker-standin-bases.sh: the real python/postgres/redis images, or Debian stand-ins
#   copy     the working tree copied to a scratch folder, with its own .env and secrets/ (setup_secrets.sh, as
#            an operator does) and a compose.yaml without `ports` (see tests/docker/compose.test.yaml)
#   stack    fake Discord on the host, parley:test-1 built, then compose.yaml + compose.prod.yaml +
#            tests/docker/compose.test.yaml brought up: migrate, web, bot, postgres, redis
# Checks, listed again in the closing lines: healthchecks, web and bot /health from the host, secrets read by the
# app user, read-only code, limits, loopback-only sockets, a killed bot restarted, data kept across down/up,
# scripts/deploy.sh deploying a release and rolling a broken one back with the data intact.
# At the end: `down -v`, the test images removed (parley:test-cache kept for the build cache), the copy removed.
#
# usage: scripts/test-docker.sh    (as root: it may install packages and start dockerd)
# environment: KEEP=1 leaves the stack, the fake Discord server and the copy running for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
logs="$root/var/docker-test"
mkdir -p "$logs"
rm -f "$logs"/*.log

# As in tests/docker/compose.test.yaml.
web_port=18000
bot_port=18080
postgres_port=55432
redis_port=56379
fake_port=18765
site_host=parley.example.com
export COMPOSE_PROJECT_NAME=parley-test
# The classic builder: BuildKit is not installed with docker.io, and it would fetch its Dockerfile frontend.
export DOCKER_BUILDKIT=0

started=$SECONDS
step_started=$SECONDS
passed=0
failed=0
skipped=0
results=()
src=""
fake_pid=""
dockerd_pid=""
latest_before=""
compose=()

step() {
  step_started=$SECONDS
  echo
  echo "== [$((SECONDS - started)) s] $*"
}

note() { echo "   $*"; }

# check NAME FUNCTION: run a check, record ok/FAIL with its time; a failed check does not stop the others.
check() {
  local name="$1" begun=$SECONDS
  shift
  echo
  echo "-- [$((SECONDS - started)) s] check: $name"
  if "$@"; then
    passed=$((passed + 1))
    results+=("ok    $name ($((SECONDS - begun)) s)")
  else
    failed=$((failed + 1))
    results+=("FAIL  $name ($((SECONDS - begun)) s)")
    echo "   FAILED: $name"
  fi
}

# A set-up step that failed: nothing after it can run.
fatal() {
  echo "!! $*" >&2
  failed=$((failed + 1))
  results+=("FAIL  set-up: $*")
  exit 1
}

dc() {
  (cd "$src" && "${compose[@]}" -f compose.yaml -f compose.prod.yaml -f tests/docker/compose.test.yaml "$@")
}

# The container of a service (the newest, stopped ones too), by compose's labels: works for v1 and v2.
cid() {
  docker ps -aq --latest --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False"
}

health() {
  local id
  id="$(cid "$1")"
  [ -n "$id" ] || { echo missing; return; }
  docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id"
}

# wait_healthy SECONDS SERVICE...: every service healthy within the time.
wait_healthy() {
  local timeout="$1" service waited=0 all
  shift
  while :; do
    all=1
    for service in "$@"; do [ "$(health "$service")" = healthy ] || all=0; done
    [ "$all" = 1 ] && return 0
    if [ "$waited" -ge "$timeout" ]; then
      for service in "$@"; do note "$service: $(health "$service")"; done
      return 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
}

web_get() {
  curl -fsS --max-time 5 -H "Host: $site_host" -H "X-Forwarded-Proto: https" "http://127.0.0.1:$web_port$1"
}

# Python run by the app user inside a service's container, with Django set up: in_app SERVICE CODE.
in_app() {
  docker exec "$(cid "$1")" python manage.py shell -c "$2"
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$src" ] && [ "${#compose[@]}" -gt 0 ] && { [ "$rc" != 0 ] || [ "$failed" != 0 ]; }; then
    dc ps >"$logs/compose-ps.log" 2>&1
    dc logs --no-color --tail=200 >"$logs/compose-logs.log" 2>&1
    echo
    echo "compose ps and the containers' last log lines: $logs/compose-ps.log, $logs/compose-logs.log"
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: the stack, the copy ($src) and the fake Discord server (pid $fake_pid) are left running;"
    echo "clean up with: (cd $src && ${compose[*]} -f compose.yaml -f compose.prod.yaml -f tests/docker/compose.test.yaml down -v)"
  else
    step "clean up"
    if [ -n "$src" ] && [ "${#compose[@]}" -gt 0 ]; then
      dc down -v --remove-orphans >>"$logs/compose.log" 2>&1 && note "stack down, volumes removed"
    fi
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
    if [ -n "$dockerd_pid" ] || docker info >/dev/null 2>&1; then remove_test_images; fi
    [ -n "$src" ] && rm -rf "$src"
    if [ -n "$dockerd_pid" ]; then
      kill "$dockerd_pid" 2>/dev/null
      for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
      note "dockerd stopped (it was started by this script)"
    fi
  fi
  echo
  echo "test-docker checked, in $((SECONDS - started)) s:"
  printf '  %s\n' "${results[@]}"
  echo "docker: $passed passed, $failed failed$([ "$skipped" = 0 ] || echo ", $skipped skipped")"
  if [ "$rc" = 0 ] && [ "$failed" = 0 ]; then exit 0; fi
  exit 1
}
trap cleanup EXIT

# Keep the first test image as parley:test-cache (the next build reuses its layers), drop the other test tags and
# give parley:latest back what it was (scripts/deploy.sh tagged a test release as latest).
remove_test_images() {
  local old_cache new_cache
  old_cache="$(docker image inspect --format '{{.Id}}' parley:test-cache 2>/dev/null)"
  new_cache="$(docker image inspect --format '{{.Id}}' parley:test-1 2>/dev/null)"
  [ -n "$new_cache" ] && docker tag parley:test-1 parley:test-cache
  if [ -n "$latest_before" ]; then
    docker tag "$latest_before" parley:latest
  else
    docker rmi parley:latest >/dev/null 2>&1
  fi
  docker rmi parley:test-1 parley:test-2 parley:test-3 >/dev/null 2>&1
  if [ -n "$old_cache" ] && [ "$old_cache" != "$new_cache" ]; then docker rmi "$old_cache" >/dev/null 2>&1; fi
  note "test images removed (parley:test-cache kept for the build cache)"
}

# --- set-up -----------------------------------------------------------------------------------------------------
step "tools"
missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || docker info >/dev/null 2>&1 || missing+=(docker.io)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "   installing with apt-get: ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
    >"$logs/apt.log" 2>&1 || { tail -n 20 "$logs/apt.log"; fatal "apt-get install ${missing[*]} failed"; }
fi
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
note "compose: ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -n 1))"
note "($((SECONDS - step_started)) s)"

step "engine"
if docker info >/dev/null 2>&1; then
  note "a Docker engine is running already (it stays running)"
else
  [ "$(id -u)" = 0 ] || fatal "no Docker engine runs, and starting dockerd needs root"
  dockerd --bridge=none --iptables=false >"$logs/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$logs/dockerd.log"; fatal "dockerd did not answer in 60 s"; }
  note "dockerd started (pid $dockerd_pid, no bridge, no NAT; log var/docker-test/dockerd.log)"
fi
note "engine $(docker version --format '{{.Server.Version}}') ($((SECONDS - step_started)) s)"

step "base images"
scripts/docker-standin-bases.sh || fatal "the base images could not be had"
note "($((SECONDS - step_started)) s)"

step "copy of the working tree"
if ! git rev-parse --git-dir >/dev/null 2>&1; then fatal "run it in Parley's git checkout (git ls-files makes the copy)"; fi
src="$(mktemp -d "${TMPDIR:-/tmp}/parley-docker-test.XXXXXX")"
# Tracked and untracked files, not the ignored ones: the developer's .env, secrets/, var/ and .venv stay out.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
  | tar --null -T - -cf - | tar -C "$src" -xf -
# docker-compose 1.29 refuses `ports` with `network_mode: host`, and an override cannot take them away.
awk '
  { match($0, /^ */); indent = RLENGTH }
  skipping && ($0 ~ /^ *(#.*)?$/ || indent > skip_indent) { next }
  { skipping = 0 }
  $0 ~ /^ *ports: *$/ { skipping = 1; skip_indent = indent; next }
  { print }
' compose.yaml >"$src/compose.yaml"
if grep -q 'ports:' "$src/compose.yaml"; then fatal "could not take the ports out of compose.yaml"; fi
(cd "$src" && ./setup_secrets.sh >/dev/null)
printf 'fake-bot-token\n' >"$src/secrets/discord_bot_token.txt"  # the fake Discord server's token
cat >"$src/.env" <<EOF
SITE_URL=https://$site_host
DJANGO_ALLOWED_HOSTS=$site_host
CSRF_TRUSTED_ORIGINS=https://$site_host
EOF
note "$src: secrets/ $(stat -c %a "$src/secrets"), secret files $(stat -c %a "$src"/secrets/*.txt | sort -u | tr '\n' ' ')($((SECONDS - step_started)) s)"
dc down -v --remove-orphans >"$logs/compose.log" 2>&1 || true  # what an interrupted run left

step "fake Discord, parley:test-1, the stack"
for port in "$web_port" "$bot_port" "$postgres_port" "$redis_port" "$fake_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fatal "127.0.0.1:$port is taken"; fi
done
latest_before="$(docker image inspect --format '{{.Id}}' parley:latest 2>/dev/null || true)"
.venv/bin/python -m tests.fakes.discord_server --port "$fake_port" --guilds 2 >"$logs/fake-discord.log" 2>&1 &
fake_pid=$!
for _ in $(seq 1 30); do curl -fsS "http://127.0.0.1:$fake_port/_control/state" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "http://127.0.0.1:$fake_port/_control/state" >/dev/null || fatal "the fake Discord server did not start"
note "fake Discord on 127.0.0.1:$fake_port ($((SECONDS - step_started)) s)"
docker build --network host -t parley:test-1 "$src" >"$logs/build.log" 2>&1 \
  || { tail -n 30 "$logs/build.log"; fatal "docker build failed"; }
note "parley:test-1 built ($((SECONDS - step_started)) s)"
export PARLEY_TAG=test-1
dc up -d --no-build >>"$logs/compose.log" 2>&1 || { tail -n 30 "$logs/compose.log"; fatal "compose up failed"; }
note "compose up done ($((SECONDS - step_started)) s)"

# --- checks -------------------------------------------------------------------------------------------------------
check_healthy() {
  wait_healthy 180 postgres redis web bot || return 1
  local migrate
  migrate="$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(cid migrate)")"
  note "postgres, redis, web, bot: healthy; migrate: $migrate"
  [ "$migrate" = "exited 0" ]
}
check "every healthcheck turns healthy (postgres, redis, web, bot) after migrate exits 0" check_healthy

check_web() {
  local body
  body="$(web_get /api/v1/health)" || return 1
  note "GET http://127.0.0.1:$web_port/api/v1/health (Host $site_host, X-Forwarded-Proto https): $body"
  [[ "$body" == *'"status": "ok"'* || "$body" == *'"status":"ok"'* ]]
}
check "the web answers on 127.0.0.1:$web_port/api/v1/health" check_web

check_bot() {
  local body
  body="$(curl -fsS --max-time 5 "http://127.0.0.1:$bot_port/health")" || return 1
  note "GET http://127.0.0.1:$bot_port/health: $body"
  .venv/bin/python -c '
import json, sys
body = json.loads(sys.argv[1])
shards = body.get("shards") or {}
sys.exit(not (body.get("status") == "ok" and shards and all(s.lower() == "ready" for s in shards.values())))
' "$body"
}
check "the bot's /health says ready (connected to the fake Discord with the token from its secret)" check_bot

# Every file in /run/secrets readable by the container's user, and the settings built from them.
SECRETS_PROBE='
import os
from django.conf import settings
problems = []
names = sorted(os.listdir("/run/secrets"))
def read(path):
    with open(path) as f:
        return f.read().strip()
for name in names:
    try:
        if not read(f"/run/secrets/{name}"):
            problems.append(f"{name} is empty")
    except OSError as exc:
        problems.append(f"{name}: {exc.strerror}")
if not problems:
    if settings.SECRET_KEY != read(os.environ["DJANGO_SECRET_KEY_FILE"]):
        problems.append("SECRET_KEY is not its file")
    if settings.DATABASES["default"]["PASSWORD"] != read(os.environ["DATABASE_PASSWORD_FILE"]):
        problems.append("the database password is not its file")
    if settings.DISCORD_BOT_TOKEN != read(os.environ["DISCORD_BOT_TOKEN_FILE"]):
        problems.append("DISCORD_BOT_TOKEN is not its file")
print(f"uid={os.getuid()} secrets={len(names)} problems={problems}")
'
check_secrets() {
  local service out ok=0 probe_file
  for service in web bot; do
    out="$(in_app "$service" "$SECRETS_PROBE" 2>&1 | tail -n 1)"
    note "$service: $out"
    [[ "$out" == uid=* && "$out" != uid=0\ * && "$out" == *" secrets=8 problems=[]" ]] || ok=1
  done
  # The bug this replaces: a secret file of mode 600 (owned by the operator) cannot be read by the app user.
  probe_file="$src/secrets/mode-probe.txt"
  printf 'probe\n' >"$probe_file"
  chmod 600 "$probe_file"
  if docker run --rm --network none -v "$probe_file:/run/secrets/probe:ro" parley:test-1 \
    python -c 'open("/run/secrets/probe").read()' >/dev/null 2>&1; then
    note "a 600 secret was readable: this check cannot tell the modes apart"
    ok=1
  else
    note "control: the same image cannot read a secret of mode 600 (what setup_secrets.sh wrote before)"
  fi
  rm -f "$probe_file"
  return "$ok"
}
check "the app reads every secret in /run/secrets as its non-root user" check_secrets

READONLY_PROBE='
import os
writable = [
    os.path.join(top, name)
    for top, dirs, files in os.walk("/app")
    if not (top + "/").startswith("/app/var/")
    for name in dirs + files
    if os.path.join(top, name) != "/app/var" and os.access(os.path.join(top, name), os.W_OK)
]
writable += ["/app"] if os.access("/app", os.W_OK) else []
var_writable = os.access("/app/var", os.W_OK)
print(f"uid={os.getuid()} var_writable={var_writable} writable={writable[:5]}")
'
check_readonly() {
  local out
  out="$(docker exec "$(cid web)" python -c "$READONLY_PROBE" 2>&1 | tail -n 1)"
  note "web: $out"
  [[ "$out" == uid=* && "$out" != uid=0\ * && "$out" == *" var_writable=True writable=[]" ]]
}
check "the code is read-only for the app user (only /app/var is writable)" check_readonly

check_limits() {
  local service out ok=0
  for service in web bot postgres redis; do
    out="$(docker inspect --format '{{.HostConfig.RestartPolicy.Name}} memory={{.HostConfig.Memory}} cpus={{.HostConfig.NanoCpus}} logs={{.HostConfig.LogConfig.Type}}/{{index .HostConfig.LogConfig.Config "max-size"}}' "$(cid "$service")")"
    note "$service: $out"
    [[ "$out" == "unless-stopped memory="[1-9]* && "$out" != *" cpus=0 "* && "$out" == *"logs=json-file/10m" ]] || ok=1
  done
  return "$ok"
}
check "production restart policy, memory and CPU limits and log rotation are applied" check_limits

check_loopback() {
  local service pid pids=() sockets networks
  for service in web bot postgres redis; do
    while read -r pid; do pids+=("$pid"); done < <(docker top "$(cid "$service")" -eo pid | tail -n +2)
  done
  sockets="$(ss -Hltnp | grep -E "pid=($(IFS='|'; echo "${pids[*]}")),")" || true
  note "listening: $(awk '{print $4}' <<<"$sockets" | sort -u | tr '\n' ' ')"
  networks="$(docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")"
  note "networks compose created: ${networks:-none}"
  [ -n "$sockets" ] && [ -z "$networks" ] && ! awk '{print $4}' <<<"$sockets" | grep -vqE '^(127\.0\.0\.1|\[::1\]):'
}
if command -v ss >/dev/null; then
  check "the containers listen on 127.0.0.1 only, on the host network (no bridge made)" check_loopback
else
  skipped=$((skipped + 1))
  results+=("skip  the containers listen on 127.0.0.1 only (no ss here: apt-get install iproute2)")
fi

check_bot_restart() {
  local id pid before after
  id="$(cid bot)"
  pid="$(docker inspect --format '{{.State.Pid}}' "$id")"
  before="$(docker inspect --format '{{.RestartCount}}' "$id")"
  # A crash, not `docker kill`: Docker does not restart a container that it was told to stop.
  kill -9 "$pid"
  note "killed the bot's process (host pid $pid, restarts so far $before)"
  for _ in $(seq 1 30); do
    after="$(docker inspect --format '{{.RestartCount}}' "$id")"
    [ "$after" -gt "$before" ] && break
    sleep 1
  done
  [ "$after" -gt "$before" ] || { note "not restarted"; return 1; }
  wait_healthy 120 bot || return 1
  note "restarted by Docker (restarts now $after), healthy again: $(curl -fsS --max-time 5 "http://127.0.0.1:$bot_port/health")"
}
check "a bot whose process dies is restarted (restart: unless-stopped)" check_bot_restart

marker="docker-test-$RANDOM$RANDOM"
has_marker() {
  in_app web "from django.contrib.auth.models import Group; print('marker', Group.objects.filter(name='$marker').exists())" \
    2>&1 | grep -q '^marker True$'
}
check_persistence() {
  in_app web "from django.contrib.auth.models import Group; Group.objects.create(name='$marker')" >/dev/null || return 1
  has_marker || return 1
  note "wrote the group $marker; compose down (without -v)"
  dc down >>"$logs/compose.log" 2>&1 || return 1
  dc up -d --no-build >>"$logs/compose.log" 2>&1 || return 1
  wait_healthy 180 postgres redis web bot || return 1
  note "compose up: healthy again; the group is $(has_marker && echo "still there" || echo GONE)"
  has_marker
}
check "compose down keeps the database volume: a row written before is read after up" check_persistence

deploy() {
  (cd "$src" && DEPLOY_COMPOSE_FILES="compose.yaml compose.prod.yaml tests/docker/compose.test.yaml" \
    DEPLOY_HEALTH_INTERVAL=2 DEPLOY_HEALTH_TIMEOUT=150 scripts/deploy.sh --no-git-pull --no-pull "$@")
}

image_of() { docker inspect --format '{{.Config.Image}}' "$(cid "$1")"; }

check_deploy() {
  deploy --tag test-2 >"$logs/deploy-test-2.log" 2>&1 || { tail -n 20 "$logs/deploy-test-2.log"; return 1; }
  note "scripts/deploy.sh --tag test-2: $(tail -n 1 "$logs/deploy-test-2.log")"
  note "web runs $(image_of web), bot runs $(image_of bot); recorded: $(cat "$src/var/deploy/current-tag")"
  [ "$(image_of web)" = parley:test-2 ] && [ "$(image_of bot)" = parley:test-2 ] \
    && [ "$(cat "$src/var/deploy/current-tag")" = test-2 ] && wait_healthy 10 web bot && has_marker
}
check "scripts/deploy.sh deploys a release (build, migrate, web and bot restarted healthy)" check_deploy

check_rollback() {
  local rc=0
  # The release's web healthcheck can never pass.
  cp "$src/config/healthcheck.py" "$src/healthcheck.py.good"
  printf 'import sys\n\nsys.exit("a deliberately broken release (scripts/test-docker.sh)")\n' >"$src/config/healthcheck.py"
  deploy --tag test-3 >"$logs/deploy-test-3.log" 2>&1 || rc=$?
  mv "$src/healthcheck.py.good" "$src/config/healthcheck.py"
  note "scripts/deploy.sh --tag test-3 exited $rc: $(grep -E 'is unhealthy|rolled back' "$logs/deploy-test-3.log" | tr '\n' ' ')"
  note "web runs $(image_of web), bot runs $(image_of bot); recorded: $(cat "$src/var/deploy/current-tag")"
  [ "$rc" = 1 ] && grep -q "rolled back to test-2" "$logs/deploy-test-3.log" \
    && [ "$(image_of web)" = parley:test-2 ] && [ "$(image_of bot)" = parley:test-2 ] \
    && [ "$(cat "$src/var/deploy/current-tag")" = test-2 ] && wait_healthy 60 web bot && web_get /api/v1/health >/dev/null \
    && has_marker && note "the data is intact (the group $marker is there)"
}
check "scripts/deploy.sh rolls a broken release (web unhealthy) back to the previous image, data intact" check_rollback
