#!/usr/bin/env bash
# venv.sh NAME PACKAGE... — a virtualenv under ${ATRIUM_CACHE:-~/.cache/atrium}/NAME
# with exactly these packages, kept outside the clone so CI and later runs
# reuse it. Prints the venv directory. Idempotent: the package list is
# recorded last, so an interrupted or outdated venv is rebuilt. Packages
# come from the index the host's pip is configured with.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: venv.sh NAME PACKAGE..." >&2; exit 2; }
name=$1
shift
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}
venv=$cache/$name
spec="$*"
mkdir -p "$cache"
# Test packages run in parallel processes: one builds, the others wait.
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$venv/.atrium-spec" 2>/dev/null)" != "$spec" ]; then
	echo "venv.sh: creating $venv ($spec)" >&2
	rm -rf "$venv"
	python3 -m venv "$venv" >&2
	"$venv/bin/python" -m pip install -q --upgrade pip >&2
	"$venv/bin/python" -m pip install -q "$@" >&2
	printf '%s' "$spec" >"$venv/.atrium-spec"
fi
echo "$venv"
