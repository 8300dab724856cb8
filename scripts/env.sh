#!/usr/bin/env bash
# Create (or reuse) alcycle's Python environment as ./.venv.
#
# The dependencies (several GB: torch with its CUDA libraries) live in a shared
# environment keyed on requirements.txt, $ALCYCLE_ENV_HOME/<hash> (default
# ~/.cache/alcycle/envs), so CI and every checkout reuse one install and a changed pin
# builds a fresh one. ./.venv is a small per-checkout environment that sees the shared
# packages and holds only alcycle itself, installed editable from this checkout: two
# checkouts never run each other's code.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
key=$(sha256sum requirements.txt | cut -c1-16)
home=${ALCYCLE_ENV_HOME:-$HOME/.cache/alcycle/envs}
shared="$home/$key"

# shellcheck source=keyed-env.sh
source scripts/keyed-env.sh
keyed_env "$shared" -r requirements.txt

if [ "$(cat .venv/.shared 2>/dev/null)" != "$shared" ]; then
  # Shared environments made by an older env.sh held alcycle itself; it must come from here.
  "$shared/bin/python" -m pip uninstall --quiet --yes alcycle >/dev/null 2>&1 || true
  rm -rf .venv
  "$python" -m venv --without-pip .venv
  site_dir() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
  # addsitedir (not a bare path line) also runs the .pth files of the shared packages.
  echo "import site; site.addsitedir('$(site_dir "$shared/bin/python")')" \
    > "$(site_dir .venv/bin/python)/_alcycle_shared_env.pth"
  for tool in dvc mlflow; do ln -s "$shared/bin/$tool" ".venv/bin/$tool"; done
  echo "$shared" > .venv/.shared
fi
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
