#!/usr/bin/env bash
# Make sure the Docker engine has the base images that Parley's Dockerfile and compose.yaml name (python,
# postgres, redis). For each one: the engine has it already -> use it; `docker pull` works -> use the real image;
# otherwise build a STAND-IN from Debian packages and tag it with the exact same name, so that the product files
# stay unchanged. Only test machines need this: they reach Debian's package mirror but no image registry.
#
# The stand-ins start from one `debootstrap --variant=minbase` of the Debian release the python tag names
# (bookworm), imported as parley-standin-debian:<release>, then add the packages with `docker build --network
# host`: python3 + pip; postgresql with a small entrypoint that does what compose.yaml relies on from the official
# image (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD[_FILE], PGDATA, `postgres -c ...` commands, pg_isready);
# redis-server + redis-cli run as the redis user in /data. The versions are Debian's, not the tag's (bookworm has
# PostgreSQL 15 under the postgres:16 tag): good enough to run the stack, never for production.
#
# The engine's image store is the cache: a rerun finds the images and does nothing. Each stand-in carries the
# label parley.standin=<hash of its recipe>; a changed recipe rebuilds it. A real image never has the label.
#
# usage: scripts/docker-standin-bases.sh
# environment:
#   STANDIN_MIRROR   Debian mirror URI (default: the first one in this machine's apt sources)
#   STANDIN_REBUILD  1 to rebuild every stand-in, even if cached
set -euo pipefail
cd "$(dirname "$0")/.."

# The names the product files use, read from them so that the stand-ins follow a bump of a tag.
python_image="$(awk '$1 == "FROM" { print $2; exit }' Dockerfile)"
postgres_image="$(sed -n 's/^ *image: *\(postgres:[^ ]*\).*/\1/p' compose.yaml | head -n 1)"
redis_image="$(sed -n 's/^ *image: *\(redis:[^ ]*\).*/\1/p' compose.yaml | head -n 1)"
release="${python_image##*-}"  # python:3.11.13-slim-bookworm -> bookworm
base_image="parley-standin-debian:$release"
for image in "$python_image" "$postgres_image" "$redis_image"; do
  [ -n "$image" ] || { echo "standin: could not read the image names from Dockerfile and compose.yaml" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log() { echo "standin: $*"; }

# The folder holding an image's recipe (Dockerfile and files): context python:3.11 -> $work/python_3.11
context() { echo "$work/${1//[:\/]/_}"; }

# The first Debian mirror in this machine's apt sources (deb822 or one-line format).
mirror() {
  if [ -n "${STANDIN_MIRROR:-}" ]; then
    echo "$STANDIN_MIRROR"
    return
  fi
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list)"
  fi
  [ -n "$uri" ] || { echo "standin: no Debian mirror in the apt sources; set STANDIN_MIRROR" >&2; exit 1; }
  echo "$uri"
}

# The stand-in label of a local image: its recipe hash, "real" for an image without it, "" when absent.
local_label() {
  docker image inspect --format '{{with index .Config.Labels "parley.standin"}}{{.}}{{else}}real{{end}}' \
    "$1" 2>/dev/null || true
}

# A base image of the minimal Debian system, built once by debootstrap (about a minute).
ensure_base() {
  if [ -n "$(local_label "$base_image")" ]; then
    return
  fi
  command -v debootstrap >/dev/null || { echo "standin: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  local rootfs="$work/rootfs" started=$SECONDS
  log "debootstrap $release (minbase) from the mirror in the apt sources"
  debootstrap --variant=minbase "$release" "$rootfs" "$(mirror)" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
  }
  # As in Debian's official images: packages installed later never try to start their service.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$base_image" >/dev/null
  log "$base_image imported ($((SECONDS - started)) s)"
}

# build_standin IMAGE: its recipe is in $(context IMAGE); a cached stand-in is rebuilt when the recipe changed.
build_standin() {
  local image="$1" dir recipe started=$SECONDS
  dir="$(context "$image")"
  recipe="$(cd "$dir" && cat ./* | sha256sum | cut -c1-16)"
  local label
  label="$(local_label "$image")"
  if [ "$label" = real ] || { [ "$label" = "$recipe" ] && [ "${STANDIN_REBUILD:-0}" != 1 ]; }; then
    log "$image: present ($([ "$label" = real ] && echo "real image" || echo "cached stand-in"))"
    return
  fi
  if [ -z "$label" ] && timeout 120 docker pull -q "$image" >/dev/null 2>&1; then
    log "$image: pulled from the registry"
    return
  fi
  ensure_base
  log "$image: building a stand-in from Debian packages"
  printf 'LABEL parley.standin=%s\n' "$recipe" >>"$dir/Dockerfile"
  DOCKER_BUILDKIT=0 docker build --network host -q -t "$image" "$dir" >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2
    exit 1
  }
  log "$image: stand-in built ($((SECONDS - started)) s)"
}

# --- python: Debian's python3 and pip where the official image has its own build ---------------------------------
python_dir="$(context "$python_image")"
mkdir -p "$python_dir"
cp /etc/ssl/certs/ca-certificates.crt "$python_dir/ca-certificates.crt"
# pip inside `docker build` reaches the package registry as this machine does: same CA bundle and pip.conf.
if [ -r /etc/pip.conf ]; then cp /etc/pip.conf "$python_dir/pip.conf"; else : >"$python_dir/pip.conf"; fi
cat >"$python_dir/Dockerfile" <<EOF
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
    && ln -s /usr/bin/python3 /usr/local/bin/python \\
    && ln -s /usr/bin/pip3 /usr/local/bin/pip
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
ENV LANG=C.UTF-8
CMD ["python3"]
EOF

# --- postgres: Debian's server, and the part of the official entrypoint that compose.yaml uses ------------------
postgres_dir="$(context "$postgres_image")"
mkdir -p "$postgres_dir"
cat >"$postgres_dir/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# Stand-in for the official postgres image's entrypoint: the first start initialises PGDATA with POSTGRES_USER,
# POSTGRES_DB and the password from POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (scram-sha-256 over TCP, trust
# on the socket), then runs the command as the postgres user.
set -euo pipefail
if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  password="${POSTGRES_PASSWORD:-}"
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then password="$(cat "$POSTGRES_PASSWORD_FILE")"; fi
  if [ -z "$password" ]; then echo "postgres stand-in: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2; exit 1; fi
  initdb --username="$user" --pwfile=<(printf '%s\n' "$password") --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA" >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q -c "CREATE DATABASE \"$db\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "postgres stand-in: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
EOF
cat >"$postgres_dir/Dockerfile" <<EOF
FROM $base_image
# No cluster from the package: the entrypoint makes one in PGDATA, as the official image does.
RUN mkdir -p /etc/postgresql-common \\
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \\
    && apt-get update \\
    && apt-get install -y --no-install-recommends postgresql \\
    && rm -rf /var/lib/apt/lists/* \\
    && ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF

# --- redis: Debian's server, run as the redis user in /data ---------------------------------------------------------
redis_dir="$(context "$redis_image")"
mkdir -p "$redis_dir"
cat >"$redis_dir/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
# Stand-in for the official redis image's entrypoint: redis-server runs as the redis user, with protected mode
# off as there (the container's network is the boundary; compose's test override binds 127.0.0.1).
set -euo pipefail
if [ "${1:0:1}" = - ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ] && { [ $# = 1 ] || [ "${2:0:2}" = -- ]; }; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec "$@"
EOF
cat >"$redis_dir/Dockerfile" <<EOF
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && mkdir -p /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF

for image in "$python_image" "$postgres_image" "$redis_image"; do
  build_standin "$image"
done
