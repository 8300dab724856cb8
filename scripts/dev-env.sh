#!/usr/bin/env bash
# Create (or reuse) the small lint environment (ruff, mypy) and print its bin folder.
#
# The tools are pinned in pyproject.toml's `dev` extra. They live apart from the heavy
# environment of scripts/env.sh, in $ALCYCLE_ENV_HOME/dev-<hash of the pins>, so changing a
# lint pin never rebuilds torch and the first lint on a machine costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
pins=$("$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]))')
key=$(printf '%s\n' "$pins" | sha256sum | cut -c1-16)
home=${ALCYCLE_ENV_HOME:-$HOME/.cache/alcycle/envs}
dev="$home/dev-$key"

# shellcheck source=keyed-env.sh
source scripts/keyed-env.sh
# shellcheck disable=SC2086
keyed_env "$dev" $pins
echo "$dev/bin"
