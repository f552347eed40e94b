#!/usr/bin/env bash
# Local base images for a Docker engine that can pull nothing (no registry reachable, as on our CI
# machines): a Python 3.11 image and a Redis 7 image made from Debian bookworm's own packages with
# debootstrap, imported with `docker import`. Compose uses them when told to (deploy/docker/local.env):
#   MOODTUNES_PYTHON_IMAGE=moodtunes-base/python:3.11-bookworm   (instead of python:3.11-slim)
#   MOODTUNES_REDIS_IMAGE=moodtunes-base/redis:7-bookworm        (instead of redis:7-alpine)
# The Python image trusts the host's CA store, so pip inside it verifies TLS as the host's pip does.
# An image that already exists is kept; --force makes both again. Needs root, debootstrap and a Docker engine.
set -euo pipefail

PYTHON_IMAGE=${MOODTUNES_PYTHON_IMAGE:-moodtunes-base/python:3.11-bookworm}
REDIS_IMAGE=${MOODTUNES_REDIS_IMAGE:-moodtunes-base/redis:7-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Downloaded .debs are kept here, so a second run (or the other image) fetches only what it lacks.
CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/moodtunes-debootstrap}
force=0
[ "${1:-}" = "--force" ] && force=1

work=$(mktemp -d /var/tmp/moodtunes-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

# make_image NAME PACKAGES [docker import --change ...]: one debootstrap root, trimmed, imported as NAME.
make_image() {
  local name=$1 packages=$2 root="$work/$(echo "$1" | tr '/:' '__')"
  shift 2
  if [ $force = 0 ] && docker image inspect "$name" >/dev/null 2>&1; then
    echo "base-images: $name exists (--force makes it again)"
    return
  fi
  local start=$SECONDS cache="$CACHE/$(basename "$root")"
  # One cache per image: two debootstraps writing the same .deb at once would clash.
  mkdir -p "$cache"
  debootstrap --variant=minbase --cache-dir="$cache" --include="$packages" bookworm "$root" "$MIRROR" \
    >"$root.log" 2>&1 || { tail -20 "$root.log"; echo "base-images: debootstrap of $name failed" >&2; return 1; }
  # Package lists, caches, docs and locales are not needed at run time (a third of the size).
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man,info,locale}/*
  # The images with ca-certificates trust what the host trusts (a TLS-inspecting proxy's CA too).
  if [ -d "$root/etc/ssl/certs" ]; then cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"; fi
  tar -C "$root" -c . | docker import "$@" - "$name" >/dev/null
  echo "base-images: $name built in $((SECONDS - start)) s"
}

# Both at once: debootstrap mostly waits on downloads and dpkg, so they overlap well.
make_image "$PYTHON_IMAGE" python3,python3-venv,python3-pip,ca-certificates \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' &
python_job=$!
# Debian's redis-server runs as its `redis` user; the compose command sets what the image's config would.
make_image "$REDIS_IMAGE" redis-server \
  --change 'USER redis' --change 'WORKDIR /var/lib/redis' --change 'EXPOSE 6379' \
  --change 'CMD ["redis-server", "--protected-mode", "no"]' &
redis_job=$!
status=0
wait $python_job || status=1
wait $redis_job || status=1
exit $status
