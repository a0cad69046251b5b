#!/usr/bin/env bash
# pytools.sh — the real Python clients the tests drive (twine, uv, build,
# pypiserver) and uv for Connect's environments under `make run`. Prints
# the venv directory.
exec "$(dirname "$0")/venv.sh" py-tools twine uv build wheel setuptools pypiserver
