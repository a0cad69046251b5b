#!/usr/bin/env bash
# lint.sh — gofmt and go vet over every module.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(sed -n 's#^\t\./##p' go.work))
if [ -n "$unformatted" ]; then
	echo "lint: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet github.com/atrium-suite/atrium/...
