# Sourced by env.sh and dev-env.sh: one way to build a reusable virtual environment.
#
# keyed_env DIR PIP_ARGS...: create the virtual environment DIR and `pip install PIP_ARGS`
# into it, once: DIR/.complete marks a finished install, so an interrupted one starts over.
# DIR's name carries a hash of what it installs, so a changed pin builds a fresh one.
keyed_env() {
  local dir=$1
  shift
  if [ ! -f "$dir/.complete" ]; then
    echo "$(basename "$0"): installing into $dir (first time: this can take minutes)" >&2
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    "${PYTHON:-python3}" -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip >&2
    "$dir/bin/pip" install --quiet "$@" >&2
    touch "$dir/.complete"
  fi
}
