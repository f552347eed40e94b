#!/bin/sh
# `pip install` into the image's virtual environment, always under the lock. When the build context
# brings wheels (deploy/docker/wheels.sh fills deploy/docker/wheels on the host), only those are used
# and no index is asked: the build then needs no network, and the training image gets the CPU torch
# wheel. Without them (a normal machine), pip uses its index.
set -eu
if ls /wheels/*.whl >/dev/null 2>&1; then
  set -- --no-index --find-links /wheels "$@"
fi
exec /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -c requirements/constraints.txt "$@"
