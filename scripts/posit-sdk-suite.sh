#!/usr/bin/env bash
# posit-sdk-suite.sh [--prepare | TEST_FILE...] — run posit-sdk's own integration tests
# (integration/tests/posit/connect in its source distribution) against
# Atrium Connect and print a pass/fail table. docs/connect-sdk-suite.md
# lists the results and the reason for every failure;
# e2e/connect_sdk_suite_test.go runs this script and compares.
#
# The suite expects a clean server (several classes assert that no content
# is left after their teardown), so every test file runs against a fresh
# `atrium up` with its own data directory: a file that fails part-way
# cannot fail the files after it.
#
# TEST_FILE is a path under tests/posit/connect (e.g. test_users.py); the
# default is every test file. --prepare only builds the venv and fetches
# the suite (what needs the package index), then prints the suite's
# directory. Environment:
#   ATRIUM_BIN        the atrium binary (default: bin/atrium, built with
#                     `make build` when missing)
#   SUITE_RESULTS     also write the results here, one "ID<TAB>OUTCOME<TAB>
#                     MESSAGE" line per test (OUTCOME: pass fail error skip)
#   SUITE_KEEP        when set, keep the work directory (servers' logs)
#   ATRIUM_CACHE      where the venv and the suite's source are cached
#                     (default ~/.cache/atrium)
# Exit status: 0 when the suite ran (whatever its results), non-zero when it
# could not run.
set -euo pipefail

# The posit-sdk release whose tests run here, and its sdist's sha256; the
# venv gets the same version, so the client and its tests agree.
SDK_VERSION=0.17.0
SDK_SHA256=1bae2dd30c409d80e80a1305722aee048cad058acc07f1f659101c243a8baf6d

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}

venv=$("$root/scripts/venv.sh" posit-sdk-suite "posit-sdk==$SDK_VERSION" pytest)
# uv builds the content's Python environments (as under `make run`).
tools=$("$root/scripts/pytools.sh")

# The suite's source: posit-sdk's sdist carries integration/, with the
# bundles the tests upload. Downloaded once, checked, unpacked atomically.
src=$cache/posit-sdk-suite-src/posit_sdk-$SDK_VERSION
if [ ! -d "$src/integration/tests/posit/connect" ]; then
	mkdir -p "$cache/posit-sdk-suite-src"
	dl=$(mktemp -d "$cache/posit-sdk-suite-src/.dl.XXXXXX")
	trap 'rm -rf "$dl"' EXIT
	"$venv/bin/python" -m pip download -q --no-binary :all: --no-deps "posit-sdk==$SDK_VERSION" -d "$dl" >&2
	sdist=$dl/posit_sdk-$SDK_VERSION.tar.gz
	echo "$SDK_SHA256  $sdist" | sha256sum -c --quiet - >&2
	tar -xzf "$sdist" -C "$dl"
	rm -rf "$src"
	mv "$dl/posit_sdk-$SDK_VERSION" "$src"
	rm -rf "$dl"
	trap - EXIT
fi

if [ "${1:-}" = --prepare ]; then
	echo "$src"
	exit 0
fi

bin=${ATRIUM_BIN:-$root/bin/atrium}
if [ ! -x "$bin" ]; then
	make -C "$root" build >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/posit-sdk-suite.XXXXXX")
# Run as root, Connect runs content as an unprivileged user, which must
# reach the data dirs below this one (searchable, not listable).
chmod 711 "$work"
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ -z "${SUITE_KEEP:-}" ]; then
		rm -rf "$work"
	else
		echo "posit-sdk-suite: work directory kept: $work" >&2
	fi
}
trap cleanup EXIT

cat >"$work/atrium.toml" <<'EOF'
[connect]
listen = "127.0.0.1:0"
[workbench]
listen = "127.0.0.1:0"
[packagemanager]
listen = "127.0.0.1:0"
[identity]
listen = "127.0.0.1:0"
EOF

# A pytest plugin that writes every phase's outcome (setup, call,
# teardown) of every test, so that an error in a class's teardown is
# charged to the test it ran after, as pytest itself reports it.
cat >"$work/atrium_suite_report.py" <<'EOF'
import json
import os


def _message(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        return report.longrepr[2]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    lines = str(report.longrepr or "").strip().splitlines()
    return lines[-1] if lines else ""


def _write(record):
    with open(os.environ["ATRIUM_SUITE_EVENTS"], "a") as f:
        f.write(json.dumps(record) + "\n")


def pytest_runtest_logreport(report):
    _write({"id": report.nodeid, "when": report.when, "outcome": report.outcome, "message": _message(report)})


def pytest_collectreport(report):
    if report.failed:
        _write({"id": report.nodeid, "when": "collect", "outcome": "failed", "message": _message(report)})
EOF

start_atrium() { # DATA_DIR → sets server_pid and connect_url
	local data=$1 out=$1.out
	# Created here, not by the background job's redirection, which may not
	# have happened yet when the loop below first reads it.
	: >"$out"
	PATH="$tools/bin:$PATH" "$bin" up --config "$work/atrium.toml" --data-dir "$data" >"$out" 2>"$data.err" &
	server_pid=$!
	local deadline=$((SECONDS + 60))
	connect_url=
	while [ -z "$connect_url" ]; do
		connect_url=$(sed -n 's/^Connect[[:space:]]\{1,\}\(http[^[:space:]]*\).*/\1/p' "$out" | head -n1)
		connect_url=${connect_url%/}
		if [ -n "$connect_url" ]; then break; fi
		if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "posit-sdk-suite: atrium did not start:" >&2
			cat "$data.err" >&2
			return 1
		fi
		sleep 0.2
	done
}

stop_atrium() {
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

tests=$src/integration/tests/posit/connect
if [ $# -gt 0 ]; then
	files=("$@")
else
	mapfile -t files < <(cd "$tests" && find . -name 'test_*.py' | sed 's|^\./||' | LC_ALL=C sort)
fi

events=$work/events.jsonl
: >"$events"
n=0
for f in "${files[@]}"; do
	n=$((n + 1))
	data=$work/data-$n
	start_atrium "$data"
	key=$(ATRIUM_SHARED_DATA_DIR=$data "$bin" users token admin --product connect --name posit-sdk-suite |
		grep -o 'atr_[^[:space:]]*' | head -n1)
	echo "posit-sdk-suite: $f against $connect_url" >&2
	# The tests resolve bundle paths from their own files and read the
	# server from CONNECT_SERVER/CONNECT_API_KEY, as upstream's Makefile
	# runs them (from integration/, with the sdist's pytest options).
	(cd "$src/integration" &&
		CONNECT_SERVER=$connect_url CONNECT_API_KEY=$key ATRIUM_SUITE_EVENTS=$events \
			PYTHONPATH=$work PYTHONWARNINGS=ignore \
			timeout 600 "$venv/bin/python" -m pytest -p atrium_suite_report -p no:cacheprovider \
			-q --no-header -rN --tb=short "tests/posit/connect/$f" >"$work/pytest-$n.log" 2>&1) || true
	stop_atrium
done

"$venv/bin/python" - "$events" "${SUITE_RESULTS:-}" <<'EOF'
import json
import sys

events_path, results_path = sys.argv[1], sys.argv[2]
order, tests = [], {}
for line in open(events_path):
    e = json.loads(line)
    tid = e["id"].split("tests/posit/connect/", 1)[-1]
    if tid not in tests:
        order.append(tid)
        tests[tid] = {"outcome": "pass", "message": ""}
    t = tests[tid]
    msg = " ".join(e["message"].split())[:200]
    if e["outcome"] == "failed":
        kind = "fail" if e["when"] == "call" else "error"
        if t["outcome"] in ("pass", "skip"):
            t["outcome"] = kind
            t["message"] = msg if kind == "fail" else "[%s] %s" % (e["when"], msg)
    elif e["outcome"] == "skipped" and t["outcome"] == "pass":
        t["outcome"], t["message"] = "skip", msg

width = max([len(t) for t in order] + [4])
print("%-*s  %-6s  %s" % (width, "test", "result", "message"))
counts = {}
for tid in order:
    t = tests[tid]
    counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    print("%-*s  %-6s  %s" % (width, tid, t["outcome"], t["message"]))
print(", ".join("%d %s" % (counts[k], k) for k in ("pass", "fail", "error", "skip") if k in counts))
if results_path:
    with open(results_path, "w") as f:
        for tid in order:
            t = tests[tid]
            f.write("%s\t%s\t%s\n" % (tid, t["outcome"], t["message"].replace("\t", " ")))
EOF
