#!/usr/bin/env bash
# test.sh — everything CI checks, on a fresh machine or a developer's.
# Installs PostgreSQL when missing, starts a throwaway cluster on a free port
# for the store suite and the e2e tests, and always stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
scripts/lint.sh

pgdir=$(mktemp -d /tmp/atrium-pg.XXXXXX)
trap 'scripts/test-postgres.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
ATRIUM_TEST_POSTGRES_DSN=$(scripts/test-postgres.sh start "$pgdir")
export ATRIUM_TEST_POSTGRES_DSN
echo "test: PostgreSQL at $ATRIUM_TEST_POSTGRES_DSN" >&2

go test -race -count=1 -timeout 25m github.com/atrium-suite/atrium/...
