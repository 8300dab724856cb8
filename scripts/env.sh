#!/usr/bin/env bash
# Create (or reuse) alcycle's Python environment and link it as ./.venv.
#
# The environment is keyed on requirements.txt: it lives in
# $ALCYCLE_ENV_HOME/<hash of requirements.txt> (default ~/.cache/alcycle/envs), so CI
# and repeated runs reuse the multi-GB install, and a changed pin builds a fresh one.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
key=$(sha256sum requirements.txt | cut -c1-16)
home=${ALCYCLE_ENV_HOME:-$HOME/.cache/alcycle/envs}
env_dir="$home/$key"

if [ ! -f "$env_dir/.complete" ]; then
  echo "env.sh: building the environment in $env_dir (first time: several GB, some minutes)" >&2
  rm -rf "$env_dir"
  mkdir -p "$home"
  "$python" -m venv "$env_dir"
  "$env_dir/bin/pip" install --quiet --upgrade pip
  "$env_dir/bin/pip" install --quiet -r requirements.txt
  touch "$env_dir/.complete"
fi

ln -sfn "$env_dir" .venv
# The package itself is installed editable from this checkout on every call (seconds),
# so a shared environment always runs the code of the checkout that called it.
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e . >/dev/null
