#!/usr/bin/env bash
# r.sh install — make Rscript and `R CMD build` available for the CRAN tests
# (packagemanager/cran builds real source packages and runs install.packages()
# against the generated index, because only R itself can tell whether our
# PACKAGES files are what R expects).
# Idempotent: when Rscript is already on PATH it does nothing.
set -euo pipefail

usage() {
	echo "usage: $0 install" >&2
	exit 2
}

install_r() {
	if command -v Rscript >/dev/null 2>&1; then
		echo "r.sh: Rscript already installed ($(command -v Rscript))" >&2
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "r.sh: Rscript is missing; run as root or: apt-get install --no-install-recommends r-base-core" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	echo "r.sh: apt-get update" >&2
	apt-get update -qq >&2
	# --no-install-recommends keeps out the compilers and TeX that r-base
	# pulls in; pure-R test packages need neither.
	echo "r.sh: apt-get install -y --no-install-recommends r-base-core" >&2
	apt-get install -y -qq --no-install-recommends r-base-core >&2
	echo "r.sh: installed $(Rscript --version 2>&1 | head -1)" >&2
}

case "${1:-}" in
install) install_r ;;
*) usage ;;
esac
