#!/usr/bin/env bash
# deps.sh build|test — install what `make run` / `make test` need, if missing.
# Idempotent: a second run installs nothing.
set -euo pipefail

need_go() {
	if ! command -v go >/dev/null; then
		echo "deps: Go 1.26 or newer is required (https://go.dev/doc/install)" >&2
		exit 1
	fi
	local v
	v=$(go env GOVERSION | sed 's/^go//')
	if [ "$(printf '%s\n1.26\n' "${v%%[-+ ]*}" | sort -V | head -1)" != "1.26" ]; then
		echo "deps: Go $v is too old; Atrium needs 1.26 or newer" >&2
		exit 1
	fi
}

apt_install() { # packages…
	local missing=()
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: please install ${missing[*]} (apt-get install ${missing[*]}) or run as root" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

need_go
case "${1:-build}" in
build) ;;
test)
	# The store suite and the e2e tests run against a real PostgreSQL.
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
		apt_install postgresql
	fi
	# The browser tests drive Debian's Chromium headless.
	if ! command -v chromium >/dev/null; then
		apt_install chromium fonts-dejavu-core
	fi
	# The external-provider test runs a real Keycloak, fetched through
	# Maven into a cache outside the clone (scripts/keycloak.sh).
	command -v unzip >/dev/null || apt_install unzip
	command -v mvn >/dev/null || apt_install maven
	scripts/keycloak.sh install >/dev/null
	# Package Manager's tests drive R and the real Python clients.
	scripts/r.sh install
	scripts/pytools.sh >/dev/null
	;;
*)
	echo "usage: deps.sh build|test" >&2
	exit 2
	;;
esac
