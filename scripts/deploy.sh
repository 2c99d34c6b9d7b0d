#!/usr/bin/env bash
# Deploy Parley on a host that runs the production compose stack (compose.yaml + compose.prod.yaml):
#   1. git pull            the new code (skip with --no-git-pull)
#   2. pull                the images we do not build (postgres, redis; skip with --no-pull)
#   3. build               the app image as parley:<tag> (default tag: the git commit)
#   4. migrate             the one-shot migrate service, on the new image; if it fails nothing was restarted
#   5. restart web         on the new image, then wait until its healthcheck says healthy
#   6. restart the bot(s)  the same, each bot service in turn
#   7. record              tag parley:<tag> as parley:latest and remember <tag> as the running release
# If web or a bot is not healthy in time, the web and bot services are put back on the previous release's
# image and the script exits 1. Migrations are not undone: keep them backward compatible (add, then remove
# in a later release), so the previous release runs on the new schema.
#
# Compose v2 (`docker compose`) when the docker CLI has it, else docker-compose (1.29 works).
#
# usage: scripts/deploy.sh [--dry-run] [--tag TAG] [--no-git-pull] [--no-pull]
#   --dry-run      print every step, run nothing (DEPLOY_SIMULATE_UNHEALTHY=web|bot shows the rollback path)
#   --no-pull      use the postgres and redis images the engine has (no registry, or pinned on purpose)
# environment:
#   DEPLOY_COMPOSE_FILES   compose files, in order (default "compose.yaml compose.prod.yaml"; add a site override)
#   DEPLOY_BOT_SERVICES    bot services to restart (default "bot"; sharded: "bot-a bot-b")
#   DEPLOY_PROFILES        compose profiles to enable (sharded: "sharded")
#   DEPLOY_HEALTH_TIMEOUT  seconds to wait for a service to become healthy (default 180)
#   DEPLOY_STATE_DIR       where the running release's tag is kept (default var/deploy)
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
tag=""
git_pull=1
pull=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --tag) tag="${2:?--tag needs a value}"; shift ;;
    --tag=*) tag="${1#--tag=}" ;;
    --no-git-pull) git_pull=0 ;;
    --no-pull) pull=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

read -r -a bot_services <<< "${DEPLOY_BOT_SERVICES:-bot}"
health_timeout="${DEPLOY_HEALTH_TIMEOUT:-180}"
health_interval="${DEPLOY_HEALTH_INTERVAL:-5}"
state_dir="${DEPLOY_STATE_DIR:-var/deploy}"
compose_files=()
for file in ${DEPLOY_COMPOSE_FILES:-compose.yaml compose.prod.yaml}; do compose_files+=(-f "$file"); done
if docker compose version >/dev/null 2>&1; then
  compose_command=(docker compose)
else
  compose_command=(docker-compose)
fi
profiles=()
for profile in ${DEPLOY_PROFILES:-}; do profiles+=(--profile "$profile"); done
step_number=0

step() {
  step_number=$((step_number + 1))
  echo
  echo "==> ${step_number}. $*"
}

# Print a command, then run it (not in a dry run).
run() {
  echo "+ $*"
  if [ "$dry_run" -eq 0 ]; then
    "$@"
  fi
}

# Compose on the production files, with PARLEY_TAG selecting the image: compose TAG ARGS...
compose() {
  local release="$1"
  shift
  echo "+ PARLEY_TAG=$release ${compose_command[*]} ${compose_files[*]} ${profiles[*]} $*" | tr -s ' '
  if [ "$dry_run" -eq 0 ]; then
    PARLEY_TAG="$release" "${compose_command[@]}" "${compose_files[@]}" "${profiles[@]}" "$@"
  fi
}

# Wait until every container of a service reports healthy: wait_healthy TAG SERVICE.
wait_healthy() {
  local release="$1" service="$2" waited=0 ids status
  echo "+ wait until $service is healthy (docker inspect every ${health_interval}s, at most ${health_timeout}s)"
  if [ "$dry_run" -eq 1 ]; then
    if [ "${DEPLOY_SIMULATE_UNHEALTHY:-}" = "$service" ] && [ "$release" = "$tag" ]; then
      echo "  (simulated) $service is unhealthy"
      return 1
    fi
    return 0
  fi
  while :; do
    ids="$(PARLEY_TAG="$release" "${compose_command[@]}" "${compose_files[@]}" "${profiles[@]}" ps -q "$service")"
    status="missing"
    if [ -n "$ids" ]; then
      status="healthy"
      for id in $ids; do
        local one
        one="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
        [ "$one" = "healthy" ] || status="$one"
      done
    fi
    case "$status" in
      healthy) echo "  $service is healthy"; return 0 ;;
      unhealthy|exited|dead) echo "  $service is $status" >&2; return 1 ;;
    esac
    if [ "$waited" -ge "$health_timeout" ]; then
      echo "  $service is still $status after ${health_timeout}s" >&2
      return 1
    fi
    sleep "$health_interval"
    waited=$((waited + health_interval))
  done
}

restart_and_wait() {
  local release="$1"
  shift
  local service
  for service in "$@"; do
    compose "$release" up -d --no-deps "$service"
    wait_healthy "$release" "$service" || return 1
  done
}

rollback() {
  local failed="$1"
  echo
  echo "!! the new release $tag failed its health check ($failed)"
  if [ -z "$previous" ]; then
    echo "!! no previous release to roll back to: fix the problem and deploy again" >&2
    exit 1
  fi
  step "roll back web and the bots to $previous"
  if restart_and_wait "$previous" web "${bot_services[@]}"; then
    echo "rolled back to $previous; $tag is not running (migrations stay applied)" >&2
  else
    echo "!! the previous release $previous is not healthy either: look at the logs (make logs)" >&2
  fi
  exit 1
}

previous=""
if [ -s "$state_dir/current-tag" ]; then
  previous="$(cat "$state_dir/current-tag")"
fi

echo "Parley deploy$([ "$dry_run" -eq 1 ] && echo ' (dry run: nothing is run)')"
if [ "$git_pull" -eq 1 ]; then
  step "git pull"
  run git pull --ff-only
fi
if [ -z "$tag" ]; then
  tag="$(git rev-parse --short HEAD)"
  [ "$dry_run" -eq 1 ] && [ "$git_pull" -eq 1 ] && echo "  (the tag would be the commit after the pull; now $tag)"
fi
echo "release: $tag; previous: ${previous:-none (no rollback possible)}"

if [ "$pull" -eq 1 ]; then
  step "pull the postgres and redis images"
  compose "$tag" pull postgres redis
fi
step "build parley:$tag"
compose "$tag" build
step "migrate the database on parley:$tag"
if ! compose "$tag" run --rm migrate; then
  echo "!! migrations failed: nothing was restarted, ${previous:-the running release} keeps running" >&2
  exit 1
fi
step "restart web on parley:$tag"
restart_and_wait "$tag" web || rollback web
step "restart ${bot_services[*]} on parley:$tag"
restart_and_wait "$tag" "${bot_services[@]}" || rollback "${bot_services[*]}"
step "record $tag as the running release"
run docker tag "parley:$tag" parley:latest
run mkdir -p "$state_dir"
echo "+ echo $tag > $state_dir/current-tag"
if [ "$dry_run" -eq 0 ]; then
  [ -n "$previous" ] && printf '%s\n' "$previous" > "$state_dir/previous-tag"
  printf '%s\n' "$tag" > "$state_dir/current-tag"
fi
echo
echo "deployed $tag"
