#!/bin/sh
# Build wheels of the client and the server from this checkout and install them into a new
# virtual environment VENV_DIR: what the image's builder stage runs (deploy/Dockerfile), and
# what tests/deploy/test_image.py runs in a fresh directory.
#
#   deploy/build-venv.sh VENV_DIR
#
# PYTHON (default python3) builds the wheels and creates the venv; EXTRAS (e.g. "tracing")
# names optional dependency groups of the server to install as well. pip reads its usual PIP_*
# variables: the image build uses the index for the dependencies; the test sets PIP_NO_DEPS,
# PIP_NO_INDEX and PIP_NO_BUILD_ISOLATION so it runs offline in seconds.
set -eu

venv=${1:?usage: deploy/build-venv.sh VENV_DIR}
python=${PYTHON:-python3}
source_dir=$(cd "$(dirname "$0")/.." && pwd)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$source_dir/client" "$source_dir"
# No pip or setuptools in the venv (nothing installs at run time): the builder's pip installs
# into it.
"$python" -m venv --without-pip "$venv"
client=$(echo "$wheels"/modelregistry_client-*.whl)
server=$(echo "$wheels"/modelregistry_server-*.whl)
"$python" -m pip --python "$venv/bin/python" install --quiet --no-compile \
    --find-links "$wheels" "$client" "$server${EXTRAS:+[$EXTRAS]}"
# The health check the image, compose and exec probes run (deploy/healthcheck.py).
{ echo "#!$venv/bin/python"; cat "$source_dir/deploy/healthcheck.py"; } >"$venv/bin/modelregistry-healthcheck"
chmod 0755 "$venv/bin/modelregistry-healthcheck"
# Byte-compile once here, so a read-only root file system never needs to write .pyc files.
"$venv/bin/python" -m compileall -q "$venv/lib"
