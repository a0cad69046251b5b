#!/usr/bin/env bash
# connect-clients.sh — the real Posit Connect clients the Connect tests
# drive (rsconnect-python's `rsconnect` CLI and posit-sdk). Prints the venv
# directory.
exec "$(dirname "$0")/venv.sh" connect-clients rsconnect-python posit-sdk
