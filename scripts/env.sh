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

# The interpreter itself, not a link to it inside ./.venv, which this script may remove
# (make puts .venv/bin first on PATH).
python=$(readlink -f "$(command -v "${PYTHON:-python3}")")

# Fashion-MNIST (prepare.source: fashion_mnist) comes from Debian; MNIST-5k, the default,
# needs nothing. Root installs it; anyone else is told the command once per checkout.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    install_fmnist() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; }
    { install_fmnist || { apt-get update -qq && install_fmnist; }; } \
      >/dev/null 2>&1 || echo "env.sh: could not install dataset-fashion-mnist; Fashion-MNIST stays unavailable" >&2
  elif [ ! -e .venv/.fashion-mnist-hint ]; then
    echo "env.sh: for Fashion-MNIST (prepare.source: fashion_mnist) run: sudo apt-get install dataset-fashion-mnist" >&2
    mkdir -p .venv && touch .venv/.fashion-mnist-hint
  fi
fi
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
  for tool in dvc mlflow ray; do ln -s "$shared/bin/$tool" ".venv/bin/$tool"; done
  echo "$shared" > .venv/.shared
fi
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
