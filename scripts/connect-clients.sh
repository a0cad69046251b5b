#!/usr/bin/env bash
# connect-clients.sh — a virtualenv with the real Posit Connect clients the
# Connect tests drive (rsconnect-python's `rsconnect` CLI and posit-sdk),
# kept outside the clone so CI and later runs reuse it. Prints the venv
# directory. Idempotent: packages come from the index the host's pip is
# configured with.
set -euo pipefail
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}
venv=$cache/connect-clients
want="rsconnect-python posit-sdk"
if [ ! -x "$venv/bin/rsconnect" ] || ! "$venv/bin/python" -c "import posit.connect" 2>/dev/null; then
	mkdir -p "$cache"
	rm -rf "$venv.tmp"
	python3 -m venv "$venv.tmp" >&2
	"$venv.tmp/bin/python" -m pip install -q --upgrade pip >&2
	# shellcheck disable=SC2086
	"$venv.tmp/bin/python" -m pip install -q $want >&2
	rm -rf "$venv"
	mv "$venv.tmp" "$venv"
	# A moved venv's scripts point at the old path: recreate them in place.
	python3 -m venv --upgrade "$venv" >&2
	# shellcheck disable=SC2086
	"$venv/bin/python" -m pip install -q --force-reinstall --no-deps $want >&2
fi
echo "$venv"
