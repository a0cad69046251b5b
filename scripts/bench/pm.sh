#!/usr/bin/env bash
# pm.sh — Package Manager benchmark: Atrium against pypiserver and
# devpi-server serving the same fixed set of real wheels on this machine,
# every number measured in this one run. It is a report, not a test: a
# missed target is printed, not failed; the script exits non-zero only when
# a server does not start or a measurement errors.
#
#   installs  uv pip install (fresh venv, --no-cache --reinstall) and
#             pip download (--no-cache-dir --no-deps) of all the wheels;
#             cold = the first run right after a fresh server start (each
#             cold sample gets its own restart), warm = runs after that;
#             uv's own phase times (resolving; downloading and unpacking)
#             from its summary lines, beside each uv install.
#   index     wrk on the simple index root and on one project page, with
#             Accept: text/html and Accept: application/vnd.pypi.simple.v1+json.
#
# Tools are installed idempotently: wrk (apt-get, as root), the py-tools
# venv (scripts/pytools.sh: uv), a bench venv with pinned pypiserver and
# devpi-server/devpi-client, and the wheels (pip download, from the index
# the host's pip is configured with). Everything is cached under
# ~/.cache/atrium; results go to stdout and ~/.cache/atrium/bench-results/.
#
# Knobs (environment): BENCH_REPS (warm runs, 5), BENCH_COLD_REPS (cold
# runs, 3), BENCH_WRK_DURATION (5s), BENCH_WRK_CONNECTIONS (32),
# BENCH_WRK_THREADS (2), BENCH_KEEP=1 keeps the temporary dirs,
# BENCH_ATRIUM=PATH benchmarks that binary instead of building bin/atrium.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/bench
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}
REPS=${BENCH_REPS:-5}
COLD_REPS=${BENCH_COLD_REPS:-3}
WRK_DURATION=${BENCH_WRK_DURATION:-5s}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-32}
WRK_THREADS=${BENCH_WRK_THREADS:-2}

# The peers, pinned so runs months apart compare the same software.
PEERS="devpi-server==6.20.3 devpi-client==7.3.0 pypiserver[cache]==2.4.2"
# The wheels: real, mostly pure-Python, closed under their dependencies
# (flask and requests pull in the rest), so uv resolves from the server alone.
PINS="requests==2.32.3 urllib3==2.2.3 idna==3.10 certifi==2024.8.30
charset-normalizer==3.4.0 six==1.16.0 attrs==24.2.0 packaging==24.1
click==8.1.7 itsdangerous==2.2.0 markupsafe==2.1.5 jinja2==3.1.4
werkzeug==3.0.4 flask==3.0.3 blinker==1.8.2 pyparsing==3.1.4
python-dateutil==2.9.0.post0 pytz==2024.2 tzdata==2024.2
typing-extensions==4.12.2 colorama==0.4.6"
PROJECT=requests # the project page wrk asks for

log() { printf 'pm.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- tools -----------------------------------------------------------------

ensure_wrk() {
	command -v wrk >/dev/null && return
	local sudo=()
	if [ "$(id -u)" != 0 ]; then
		sudo -n true 2>/dev/null || die "wrk is missing and apt-get needs root: install wrk"
		sudo=(sudo -n)
	fi
	log "installing wrk"
	"${sudo[@]}" apt-get install -y -q wrk >&2 || {
		"${sudo[@]}" apt-get update -q >&2
		"${sudo[@]}" apt-get install -y -q wrk >&2
	}
	command -v wrk >/dev/null || die "wrk did not install"
}


ensure_wheels() {
	local dir=$cache/bench-wheels spec n
	spec="$(python3 -c 'import sys; print(sys.implementation.cache_tag)') $PINS"
	n=$(wc -w <<<"$PINS")
	if [ "$(cat "$dir/.bench-spec" 2>/dev/null)" != "$spec" ] || [ "$(find "$dir" -maxdepth 1 -name '*.whl' | wc -l)" != "$n" ]; then
		log "downloading $n wheels into $dir"
		rm -rf "$dir" "$dir.tmp"
		mkdir -p "$dir.tmp"
		# shellcheck disable=SC2086
		"$bvenv/bin/python" -m pip download -q --no-deps --only-binary :all: -d "$dir.tmp" $PINS >&2
		[ "$(find "$dir.tmp" -maxdepth 1 -name '*.whl' | wc -l)" = "$n" ] || die "pip download did not give $n wheels"
		printf '%s' "$spec" >"$dir.tmp/.bench-spec"
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

ensure_wrk
tools=$("$root/scripts/pytools.sh")
# shellcheck disable=SC2086
bvenv=$("$root/scripts/venv.sh" bench-venv $PEERS)
wheels=$(ensure_wheels)
nwheels=$(wc -w <<<"$PINS")
if [ -n "${BENCH_ATRIUM:-}" ]; then
	atrium=$BENCH_ATRIUM # a binary built elsewhere, e.g. a release
else
	log "building bin/atrium"
	make -s -C "$root" build >&2
	atrium=$root/bin/atrium
fi
uv=$tools/bin/uv
pybin=$(python3 -c 'import sys; print(sys.executable)')

# --- work dirs, results, cleanup --------------------------------------------

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$cache/bench-results/pm-$stamp
mkdir -p "$results/wrk"
work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-bench.XXXXXX")
raw=$results/raw.tsv
: >"$raw"
tr ' ' '\n' <<<"$PINS" | sed '/^$/d' >"$work/reqs.txt"

declare -A PID=() INDEX=() BASE=() LOGF=()
SERVERS=(atrium pypiserver devpi)

stop_server() {
	local s=$1 pid=${PID[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	PID[$s]=
}

cleanup() {
	local rc=$? s
	for s in "${SERVERS[@]}"; do stop_server "$s"; done
	for s in "${SERVERS[@]}"; do
		[ -f "$work/$s.log" ] && cp "$work/$s.log" "$results/$s.log"
	done
	if [ "$rc" != 0 ]; then
		log "failed (exit $rc); server logs are in $results"
	fi
	if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$work"; else log "kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_up SERVER URL: until URL answers 2xx, the server dies, or 120s pass.
wait_up() {
	local s=$1 url=$2 i
	for i in $(seq 1200); do
		if curl -fs -o /dev/null --max-time 2 "$url"; then return 0; fi
		if ! kill -0 "${PID[$s]}" 2>/dev/null; then
			tail -n 30 "${LOGF[$s]}" >&2 || true
			die "$s exited before it answered $url"
		fi
		sleep 0.1
	done
	tail -n 30 "${LOGF[$s]}" >&2 || true
	die "$s did not answer $url within 120s"
}

atrium_loaded=
start_atrium() {
	local pm
	pm=$(free_port)
	LOGF[atrium]=$work/atrium.log
	# No upstream: a port nothing listens on, as the e2e tests do.
	ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=http://127.0.0.1:1/simple/ \
		ATRIUM_PACKAGEMANAGER_LISTEN=127.0.0.1:$pm \
		ATRIUM_CONNECT_LISTEN=127.0.0.1:$(free_port) \
		ATRIUM_WORKBENCH_LISTEN=127.0.0.1:$(free_port) \
		ATRIUM_IDENTITY_LISTEN=127.0.0.1:$(free_port) \
		"$atrium" up --data-dir "$work/atrium-data" >>"${LOGF[atrium]}" 2>&1 &
	PID[atrium]=$!
	BASE[atrium]=http://127.0.0.1:$pm
	INDEX[atrium]=${BASE[atrium]}/pypi/latest/simple/
	wait_up atrium "${BASE[atrium]}/readyz"
	if [ -z "$atrium_loaded" ]; then
		# The repositories exist once the server has started once.
		"$atrium" pm add --source pypi-local --data-dir "$work/atrium-data" \
			--path "$(find "$wheels" -maxdepth 1 -name '*.whl' | sort | paste -sd,)" >>"$work/setup.log" 2>&1 ||
			die "atrium pm add failed: $(tail -n 5 "$work/setup.log")"
		atrium_loaded=1
	fi
}

start_pypiserver() {
	local port
	port=$(free_port)
	LOGF[pypiserver]=$work/pypiserver.log
	# Defaults: --backend auto, --server auto (reported below).
	"$bvenv/bin/pypi-server" run -p "$port" -i 127.0.0.1 --disable-fallback "$wheels" >>"${LOGF[pypiserver]}" 2>&1 &
	PID[pypiserver]=$!
	BASE[pypiserver]=http://127.0.0.1:$port
	INDEX[pypiserver]=${BASE[pypiserver]}/simple/
	wait_up pypiserver "${BASE[pypiserver]}/health"
}

devpi_loaded=
start_devpi() {
	local port dir=$work/devpi client
	port=$(free_port)
	LOGF[devpi]=$work/devpi.log
	if [ ! -d "$dir/server" ]; then
		"$bvenv/bin/devpi-init" --serverdir "$dir/server" --no-root-pypi --root-passwd bench >>"$work/setup.log" 2>&1 ||
			die "devpi-init failed: $(tail -n 5 "$work/setup.log")"
	fi
	"$bvenv/bin/devpi-server" --serverdir "$dir/server" --host 127.0.0.1 --port "$port" --offline-mode >>"${LOGF[devpi]}" 2>&1 &
	PID[devpi]=$!
	BASE[devpi]=http://127.0.0.1:$port
	INDEX[devpi]=${BASE[devpi]}/root/bench/+simple/
	wait_up devpi "${BASE[devpi]}/+api"
	if [ -z "$devpi_loaded" ]; then
		client=(--clientdir "$dir/client")
		{
			"$bvenv/bin/devpi" use "${client[@]}" "${BASE[devpi]}/" &&
				"$bvenv/bin/devpi" login "${client[@]}" root --password bench &&
				"$bvenv/bin/devpi" index "${client[@]}" -c root/bench bases= volatile=False &&
				"$bvenv/bin/devpi" use "${client[@]}" root/bench &&
				"$bvenv/bin/devpi" upload "${client[@]}" --from-dir "$wheels"
		} >>"$work/setup.log" 2>&1 || die "devpi index setup failed: $(tail -n 5 "$work/setup.log")"
		devpi_loaded=1
	fi
}

start_server() { "start_$1"; }
restart_server() {
	stop_server "$1"
	start_server "$1"
}

# check_index SERVER: every wheel is listed, so a fast server is not fast
# because it serves less.
check_index() {
	local s=$1 page n
	page=$(curl -fsS -H 'Accept: text/html' "${INDEX[$s]}") || die "$s: GET ${INDEX[$s]} failed"
	n=$(grep -oi '<a href' <<<"$page" | wc -l)
	[ "$n" = "$nwheels" ] || die "$s lists $n projects, want $nwheels"
	curl -fsS -H 'Accept: text/html' "${INDEX[$s]}$PROJECT/" | grep -q "${PROJECT}-" || die "$s: ${INDEX[$s]}$PROJECT/ lists no $PROJECT file"
}

# --- measurements -----------------------------------------------------------

now_ms() { date +%s%3N; }
# Clients see only the server: no find-links, no config from the host.
client_env=(env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL -u UV_DEFAULT_INDEX -u UV_INDEX -u UV_FIND_LINKS)

# source_args SERVER: where a client gets the wheels. "floor" is no server
# at all, the wheel dir as --find-links: what the client alone costs.
source_args() {
	if [ "$1" = floor ]; then
		echo "--no-index --find-links $wheels"
	else
		echo "--index-url ${INDEX[$1]}"
	fi
}

# settle: the previous sample's files (a venv of every package, a directory
# of wheels, the one just removed) are written back to disk before the next
# sample starts, not during it, whichever server that sample measures.
settle() { sync; }

# time_uv SERVER LABEL: one uv pip install into a fresh venv.
time_uv() {
	local s=$1 label=$2 venv=$work/venv-$1 t0 t1 src
	read -r -a src <<<"$(source_args "$s")"
	rm -rf "$venv"
	"$uv" venv -q --no-config --python "$pybin" "$venv" >&2
	settle
	t0=$(now_ms)
	"${client_env[@]}" "$uv" pip install --no-config --no-cache --reinstall --python "$venv/bin/python" \
		"${src[@]}" -r "$work/reqs.txt" >"$work/client.log" 2>&1 ||
		die "$s: uv pip install failed: $(tail -n 20 "$work/client.log")"
	t1=$(now_ms)
	"$venv/bin/python" -c 'import requests, flask, dateutil, pytz, attrs, pyparsing, packaging, colorama, tzdata, typing_extensions' ||
		die "$s: the uv-installed venv does not import the packages"
	printf 'time\t%s\t%s\t%s\n' "$label" "$s" "$((t1 - t0))" >>"$raw"
	uv_phases "$s" "$label" "$work/client.log"
}

# uv_phases SERVER LABEL LOG: the phases uv reports on its summary lines
# ("Resolved 21 packages in 28ms", "Prepared 21 packages in 259ms"):
# resolving is what the index's pages and metadata decide; preparing is
# downloading the wheels and unpacking them into uv's cache, mostly the
# client's own disk work.
uv_phases() {
	local ms phase
	for phase in Resolved Prepared; do
		ms=$(awk -v p="$phase" '$1 == p && $(NF-1) == "in" {
			v = $NF; f = 1
			if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); f = 1000 }
			printf "%.0f\n", v * f; exit }' "$3")
		[ -n "$ms" ] || die "$1: uv did not report how long it took: no \"$phase\" line in $(tail -n 5 "$3")"
		printf 'phase\t%s\t%s\t%s\t%s\n' "$2" "$1" "$phase" "$ms" >>"$raw"
	done
}

# time_pip SERVER LABEL: one pip download of every wheel into an empty dir.
time_pip() {
	local s=$1 label=$2 dl=$work/dl-$1 t0 t1 n src
	read -r -a src <<<"$(source_args "$s")"
	rm -rf "$dl"
	settle
	t0=$(now_ms)
	"${client_env[@]}" "$bvenv/bin/python" -m pip --isolated --disable-pip-version-check download -q --no-cache-dir --no-deps -d "$dl" \
		"${src[@]}" -r "$work/reqs.txt" >"$work/client.log" 2>&1 ||
		die "$s: pip download failed: $(tail -n 20 "$work/client.log")"
	t1=$(now_ms)
	n=$(find "$dl" -maxdepth 1 -name '*.whl' | wc -l)
	[ "$n" = "$nwheels" ] || die "$s: pip download gave $n wheels, want $nwheels"
	printf 'time\t%s\t%s\t%s\n' "$label" "$s" "$((t1 - t0))" >>"$raw"
}

# run_wrk SERVER LABEL URL ACCEPT: a short warm-up, then the measured run.
# A server that does not answer 200 with the asked-for content type is
# "n/a" (it does not implement that format).
run_wrk() {
	local s=$1 label=$2 url=$3 accept=$4 out ct code
	read -r code ct < <(curl -s -o /dev/null -w '%{http_code} %{content_type}\n' -H "Accept: $accept" "$url")
	if [ "$code" != 200 ] || [ "${ct%%;*}" != "$accept" ]; then
		[ "$s" = atrium ] && die "atrium: GET $url (Accept: $accept) gave $code $ct"
		printf 'wrk\t%s\t%s\tn/a\tanswers %s %s\n' "$label" "$s" "$code" "${ct:-no content type}" >>"$raw"
		return
	fi
	out=$results/wrk/$s-${label//[^a-zA-Z0-9]/_}.txt
	wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d1s -H "Accept: $accept" "$url" >/dev/null ||
		die "$s: wrk warm-up on $url failed"
	wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --latency -H "Accept: $accept" "$url" >"$out" 2>&1 ||
		die "$s: wrk on $url failed: $(cat "$out")"
	printf 'wrk\t%s\t%s\t%s\t\n' "$label" "$s" "$out" >>"$raw"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting atrium, pypiserver and devpi-server (work dir $work)"
for s in "${SERVERS[@]}"; do
	start_server "$s"
	check_index "$s"
done

# Cold: each sample is the first client run after its own fresh start.
for i in $(seq "$COLD_REPS"); do
	for s in "${SERVERS[@]}"; do
		log "cold $i/$COLD_REPS: $s"
		restart_server "$s"
		time_uv "$s" "uv pip install, cold"
		restart_server "$s"
		time_pip "$s" "pip download, cold"
	done
	time_uv floor "uv pip install, cold"
	time_pip floor "pip download, cold"
done
# Warm: the same servers, already started and used; servers interleaved so
# drift on the machine hits all three alike.
for i in $(seq "$REPS"); do
	for s in "${SERVERS[@]}"; do
		log "warm $i/$REPS: $s"
		time_uv "$s" "uv pip install, warm"
		time_pip "$s" "pip download, warm"
	done
	time_uv floor "uv pip install, warm"
	time_pip floor "pip download, warm"
done

json=application/vnd.pypi.simple.v1+json
for spec in "/simple/ HTML||text/html" "/simple/ JSON||$json" \
	"/simple/$PROJECT/ HTML|$PROJECT/|text/html" "/simple/$PROJECT/ JSON|$PROJECT/|$json"; do
	IFS='|' read -r label path accept <<<"$spec"
	for s in "${SERVERS[@]}"; do
		log "wrk $label: $s"
		run_wrk "$s" "GET $label" "${INDEX[$s]}$path" "$accept"
	done
done

# --- report -----------------------------------------------------------------

backend=simple-dir
"$bvenv/bin/python" -c 'import watchdog' 2>/dev/null && backend=cached-dir
# The WSGI server "auto" picked, as the server itself announces it.
wsgi=$(curl -sI "${BASE[pypiserver]}/health" | tr -d '\r' | sed -n 's/^[Ss]erver: //p')
versions=(
	"$("$atrium" version 2>/dev/null | head -n1)"
	"pypiserver $("$bvenv/bin/pypi-server" --version 2>&1 | tail -n1) (backend auto = $backend, server auto = ${wsgi:-?})"
	"devpi-server $("$bvenv/bin/devpi-server" --version 2>&1 | tail -n1) (waitress, --offline-mode, index root/bench without bases)"
	"uv $("$uv" --version | awk '{print $2}'), pip $("$bvenv/bin/python" -m pip --version | awk '{print $2}'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), $("$pybin" --version)"
)
printf '%s\n' "${versions[@]}" >"$results/versions.txt"

python3 "$here/pm_report.py" --raw "$raw" --versions "$results/versions.txt" \
	--wheels "$nwheels" --reps "$REPS" --cold-reps "$COLD_REPS" \
	--wrk "-t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --latency" \
	--cpus "$(nproc)" --load "$load_start" --load-end "$(cut -d' ' -f1-3 /proc/loadavg)" >"$results/table.txt"
cat "$results/table.txt"
cp "$results/table.txt" "$cache/bench-results/pm-latest.txt"
log "results in $results (table also in $cache/bench-results/pm-latest.txt)"
