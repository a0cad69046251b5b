#!/usr/bin/env bash
# fuzz.sh — run each fuzz target in the repo for FUZZTIME (default 20s).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}
grep -rl --include='*_test.go' '^func Fuzz' $(sed -n 's#^\t\./##p' go.work) | while read -r f; do
	dir=$(dirname "$f")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "fuzz: $dir $target ($FUZZTIME)"
		(cd "$dir" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" .)
	done
done
