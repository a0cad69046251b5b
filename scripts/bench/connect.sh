#!/usr/bin/env bash
# connect.sh — Connect benchmark: Atrium's reverse proxy and Connect's
# content serving, every number measured in this one run. It is a report,
# not a test: a missed target is printed, not failed; the script exits
# non-zero only when a server does not start or a measurement errors.
#
#   proxy    wrk on one trivial Go backend (e2e/benchcmd/backend) through
#            Atrium's shared/proxy as Connect configures it
#            (e2e/benchcmd/proxyfront) — with Connect's default procs and
#            with procs = CPUs —, through nginx (worker_processes = CPUs,
#            upstream keepalive, access_log off) and through
#            configurable-http-proxy (defaults). Targets: >= 1.0x nginx,
#            >= 3x configurable-http-proxy (requests/s). For reference, no
#            target: a bare epoll event loop per CPU in Go with none of a
#            product's work (e2e/benchcmd/epollfront), the least a proxy
#            costs on this machine.
#   fastapi  a FastAPI app deployed with the real `rsconnect deploy fastapi`
#            to a real `atrium up`, two processes (min_processes =
#            max_processes = 2), through Atrium vs straight to the same two
#            uvicorn processes. Targets: >= 0.95x requests/s, <= 1.2x p99.
#            nginx and the bare epoll loop in front of the same processes
#            are measured beside them, for reference (what the best-known
#            proxy, and what any proxy, costs here), and so is "direct"
#            with the headers Connect adds to every request (what the app
#            pays to parse them, whoever sends them).
#   flask    a Flask API (`rsconnect deploy api`, gunicorn as Connect runs
#            it) with BENCH_FLASK_PROCS processes through Atrium. Target:
#            >= 2500 requests/s with 0 errors.
#   deploy   `rsconnect deploy fastapi` of a second content item with the
#            same requirements (the environment cache is warm), from the
#            upload to the content answering. Target: <= 5 s.
#
# wrk runs -c$BENCH_WRK_CONNECTIONS (250) -t2 for $BENCH_WRK_DURATION (5s)
# per sample after a 1s warm-up; the servers of a section take turns,
# BENCH_ROUNDS (5) times; the table shows each server's median round, and
# a target ratio is the median of the rounds' ratios (each round compares
# the servers under the same machine conditions). Where two
# processes are compared with Atrium, both sides are driven by two wrk
# (-t1, half the connections each): one per process for "direct", both at
# Atrium for "through Atrium".
#
# Tools are installed idempotently: wrk and nginx (apt-get, as root),
# configurable-http-proxy (npm, pinned, into ~/.cache/atrium), uv
# (scripts/pytools.sh) and rsconnect-python (scripts/connect-clients.sh).
# Results go to stdout and ~/.cache/atrium/bench-results/.
#
# Knobs (environment): BENCH_ROUNDS, BENCH_WRK_DURATION,
# BENCH_WRK_CONNECTIONS, BENCH_FLASK_PROCS (4), BENCH_PARTS (default
# "proxy connect"; "proxy" skips the deploys), BENCH_KEEP=1 keeps the
# temporary dirs, BENCH_ATRIUM=PATH uses that binary instead of building
# bin/atrium.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/scripts/bench
cache=${ATRIUM_CACHE:-$HOME/.cache/atrium}
ROUNDS=${BENCH_ROUNDS:-5}
WRK_DURATION=${BENCH_WRK_DURATION:-5s}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-250}
FLASK_PROCS=${BENCH_FLASK_PROCS:-4}
PARTS=${BENCH_PARTS:-proxy connect}

# The peer, pinned so runs months apart compare the same software.
CHP_VERSION=5.3.0
# The prefix Connect mounts content at; every proxy is asked the same path.
GUID=0f5e2a9c-bench-4b1e-9d7a-000000000001

log() { printf 'connect.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- tools -----------------------------------------------------------------

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "$* needs root"
	fi
}

# ensure_apt COMMAND PACKAGE: COMMAND from Debian's PACKAGE.
ensure_apt() {
	local cmd=$1 pkg=$2
	command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] && return
	log "installing $pkg"
	as_root apt-get install -y -q "$pkg" >&2 || {
		as_root apt-get update -q >&2
		as_root apt-get install -y -q "$pkg" >&2
	}
	command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || die "$pkg did not install $cmd"
}

# ensure_chp: configurable-http-proxy from npm into the cache, pinned.
ensure_chp() {
	local dir=$cache/chp-$CHP_VERSION
	if [ ! -x "$dir/node_modules/.bin/configurable-http-proxy" ] || [ "$(cat "$dir/.bench-spec" 2>/dev/null)" != "$CHP_VERSION" ]; then
		command -v npm >/dev/null || die "npm is missing (configurable-http-proxy comes from npm)"
		log "installing configurable-http-proxy $CHP_VERSION into $dir"
		rm -rf "$dir" "$dir.tmp"
		mkdir -p "$dir.tmp"
		(cd "$dir.tmp" && npm install --no-audit --no-fund --loglevel=error "configurable-http-proxy@$CHP_VERSION" >&2)
		printf '%s' "$CHP_VERSION" >"$dir.tmp/.bench-spec"
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir/node_modules/.bin/configurable-http-proxy"
}

want() { [[ " $PARTS " == *" $1 "* ]]; }

ensure_apt wrk wrk
ensure_apt nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CHP=$(ensure_chp)

# --- work dirs, results, cleanup --------------------------------------------

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$cache/bench-results/connect-$stamp
mkdir -p "$results/wrk"
work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-bench-connect.XXXXXX")
# Connect runs content as another user (connect.run_as), which must be able
# to reach the data dir below this one.
chmod 0711 "$work"
raw=$results/raw.tsv
: >"$raw"

declare -A PID=() LOGF=()

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
	for s in "${!PID[@]}"; do stop_server "$s"; done
	for s in "${!LOGF[@]}"; do
		[ -f "${LOGF[$s]}" ] && cp "${LOGF[$s]}" "$results/$s.log"
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

# start NAME COMMAND...: run a server in the background, output to its log.
start() {
	local s=$1
	shift
	LOGF[$s]=$work/$s.log
	"$@" >>"${LOGF[$s]}" 2>&1 &
	PID[$s]=$!
}

# wait_up SERVER URL [HEADER]: until URL answers 2xx, the server dies, or
# 120s pass.
wait_up() {
	local s=$1 url=$2 i hdr=()
	[ -n "${3:-}" ] && hdr=(-H "$3")
	for i in $(seq 1200); do
		if curl -fs -o /dev/null --max-time 2 "${hdr[@]}" "$url"; then return 0; fi
		if ! kill -0 "${PID[$s]}" 2>/dev/null; then
			tail -n 30 "${LOGF[$s]}" >&2 || true
			die "$s exited before it answered $url"
		fi
		sleep 0.1
	done
	tail -n 30 "${LOGF[$s]}" >&2 || true
	die "$s did not answer $url within 120s"
}

# --- measurements -----------------------------------------------------------

now_ms() { date +%s%3N; }

# wrk_run SECTION SERVER ROUND THREADS CONNS URL [HEADER...]: one sample. A
# sample is one wrk, or several started together (URL and THREADS/CONNS
# then apply to each, URL a space-separated list), whose outputs the report
# adds up.
# cpu_ticks PID...: user+system CPU ticks the processes used so far (all
# their threads).
cpu_ticks() {
	local p t=0
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

wrk_run() {
	local section=$1 s=$2 round=$3 threads=$4 conns=$5 urls=$6 hdr=() u i=0 files=() pids=() cpu0
	shift 6
	local h
	for h in "$@"; do hdr+=(-H "$h"); done
	for u in $urls; do
		wrk -t"$threads" -c"$conns" -d1s "${hdr[@]}" "$u" >/dev/null 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || die "$s: wrk warm-up failed"; done
	pids=()
	i=0
	# CPU_PIDS (set by the caller) are the measured server's processes:
	# their CPU time per request is reported beside the throughput, a
	# figure the machine's noise moves less than requests/s.
	cpu0=$(cpu_ticks ${CPU_PIDS:-})
	for u in $urls; do
		files+=("$results/wrk/$section-$s-$round-$i.txt")
		wrk -t"$threads" -c"$conns" -d"$WRK_DURATION" --latency "${hdr[@]}" "$u" >"${files[-1]}" 2>&1 &
		pids+=($!)
		i=$((i + 1))
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || die "$s: wrk failed: $(cat "${files[$i]}")"; done
	printf 'wrk\t%s\t%s\t%s\t%s\n' "$section" "$s" "$(
		IFS=,
		echo "${files[*]}"
	)" "$([ -n "${CPU_PIDS:-}" ] && echo $(($(cpu_ticks $CPU_PIDS) - cpu0)))" >>"$raw"
}

# nginx_config DIR PORT LOCATION PASS SERVER...: DIR/nginx.conf, nginx as it
# is run in front of app servers: one worker per CPU, kept-alive upstream
# connections to SERVERs, no access log (Atrium's proxy keeps none either),
# LOCATION passed to PASS (a PASS with a path replaces LOCATION's prefix).
nginx_config() {
	local dir=$1 port=$2 location=$3 pass=$4 servers="" s
	shift 4
	for s in "$@"; do servers+="		server $s;"$'\n'; done
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<EOF
worker_processes $(nproc);
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	upstream backend {
$servers		keepalive 512;
	}
	server {
		listen 127.0.0.1:$port;
		location $location {
			proxy_pass $pass;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			# The headers Atrium's proxy sets too.
			proxy_set_header Host \$http_host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host \$http_host;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
EOF
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
versions=()

# --- (1) the proxy against nginx and configurable-http-proxy ----------------

if want proxy; then
	log "building e2e/benchcmd (backend, proxyfront, epollfront)"
	(cd "$root/e2e" && go build -o "$work/bin/" ./benchcmd/backend ./benchcmd/proxyfront ./benchcmd/epollfront) >&2
	bport=$(free_port)
	start backend "$work/bin/backend" -listen "127.0.0.1:$bport"
	wait_up backend "http://127.0.0.1:$bport/"

	declare -A PURL=()
	proxies=(atrium)
	port=$(free_port)
	start atrium "$work/bin/proxyfront" -listen "127.0.0.1:$port" -backend "http://127.0.0.1:$bport" -guid "$GUID"
	PURL[atrium]=http://127.0.0.1:$port/content/$GUID/
	# Connect's default gives a proxying process half the CPUs (the apps
	# behind it need the rest; docs/connect.md "The Go runtime"); nginx
	# runs a worker per CPU. Atrium with as many (shared.procs = CPUs) is
	# measured too, so each setting's ratio is known.
	if [ "$(nproc)" -gt 1 ]; then
		port=$(free_port)
		start atrium-cpus "$work/bin/proxyfront" -procs "$(nproc)" -listen "127.0.0.1:$port" -backend "http://127.0.0.1:$bport" -guid "$GUID"
		PURL[atrium-cpus]=http://127.0.0.1:$port/content/$GUID/
		proxies+=(atrium-cpus)
	fi
	proxies+=(nginx epoll chp)

	port=$(free_port)
	nginx_config "$work/nginx" "$port" /content/ http://backend "127.0.0.1:$bport"
	start nginx "$NGINX" -c "$work/nginx/nginx.conf"
	PURL[nginx]=http://127.0.0.1:$port/content/$GUID/

	# For reference, not a target: the least a Go proxy costs here
	# (e2e/benchcmd/epollfront: an epoll loop per CPU, nothing else).
	port=$(free_port)
	start epoll "$work/bin/epollfront" -listen "127.0.0.1:$port" -backend "http://127.0.0.1:$bport" -loops "$(nproc)"
	PURL[epoll]=http://127.0.0.1:$port/content/$GUID/

	port=$(free_port)
	start chp "$CHP" --ip 127.0.0.1 --port "$port" --api-ip 127.0.0.1 --api-port "$(free_port)" \
		--default-target "http://127.0.0.1:$bport" --log-level warn
	PURL[chp]=http://127.0.0.1:$port/content/$GUID/

	for s in "${proxies[@]}"; do
		wait_up "$s" "${PURL[$s]}"
		curl -fsS "${PURL[$s]}" | grep -qx 'Hello, world!' || die "$s does not pass the backend's answer through"
	done
	for r in $(seq "$ROUNDS"); do
		for s in "${proxies[@]}"; do
			log "proxy, round $r/$ROUNDS: $s"
			CPU_PIDS="${PID[$s]} $(pgrep -P "${PID[$s]}" | tr '\n' ' ')" wrk_run proxy "$s" "$r" 2 "$WRK_CONNECTIONS" "${PURL[$s]}"
		done
	done
	for s in "${proxies[@]}" backend; do stop_server "$s"; done
	versions+=(
		"proxy: Atrium shared/proxy (e2e/benchcmd/proxyfront, $(go version | awk '{print $3}')), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), configurable-http-proxy $CHP_VERSION (node $(node --version))"
	)
fi

# --- (2), (3) and the deploy time through a real Connect ---------------------

if want connect; then
	tools=$("$root/scripts/pytools.sh")
	clients=$("$root/scripts/connect-clients.sh")
	if [ -n "${BENCH_ATRIUM:-}" ]; then
		atrium=$BENCH_ATRIUM
	else
		log "building bin/atrium"
		make -s -C "$root" build >&2
		atrium=$root/bin/atrium
	fi
	cport=$(free_port)
	CONNECT=http://127.0.0.1:$cport
	data=$work/atrium-data
	# Packages come from Package Manager mirroring the host pip's index
	# (an empty upstream); Connect builds environments with uv.
	start atrium-up env PATH="$tools/bin:$PATH" \
		ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM= \
		ATRIUM_CONNECT_LISTEN=127.0.0.1:$cport \
		ATRIUM_PACKAGEMANAGER_LISTEN=127.0.0.1:$(free_port) \
		ATRIUM_WORKBENCH_LISTEN=127.0.0.1:$(free_port) \
		ATRIUM_IDENTITY_LISTEN=127.0.0.1:$(free_port) \
		"$atrium" up --data-dir "$data"
	wait_up atrium-up "$CONNECT/readyz"
	KEY=$(ATRIUM_SHARED_DATA_DIR=$data "$atrium" users token admin --product connect 2>&1 | grep -o 'atr_[A-Za-z0-9_-]*' | head -n1) ||
		die "atrium users token gave no key"
	AUTH="Authorization: Key $KEY"
	export HOME=$work/home NO_COLOR=1 CONNECT_TASK_TIMEOUT=600
	mkdir -p "$HOME"
	rsc() { "$clients/bin/rsconnect" "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'; }
	rsc add -s "$CONNECT" -n atrium -k "$KEY" >"$work/rsconnect-add.log" || die "rsconnect add: $(cat "$work/rsconnect-add.log")"

	# api METHOD PATH [JSON]: Connect's API with the admin key.
	api() {
		local args=(-fsS -X "$1" -H "$AUTH")
		[ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data "$3")
		curl "${args[@]}" "$CONNECT/__api__$2"
	}

	# deploy MODE DIR LOG [--new]: rsconnect deploy; prints the content GUID.
	deploy() {
		local mode=$1 dir=$2 out=$3
		shift 3
		rsc deploy "$mode" -n atrium "$@" "$dir" >"$out" || die "rsconnect deploy $mode $dir failed: $(tail -n 30 "$out")"
		grep -o 'Direct content URL: \S*' "$out" | tail -n1 | sed 's#.*/content/\([^/]*\)/.*#\1#'
	}

	# supports_processes GUID: PATCH takes min_processes (the runtime
	# settings API), else the process sections are skipped.
	supports_processes() {
		api PATCH "/v1/content/$1" '{"min_processes":1}' 2>/dev/null | grep -q '"min_processes": *1'
	}

	# set_processes GUID N: N processes, no queueing in the scheduler below
	# the benchmark's connection count, then wait until the jobs API lists
	# N running jobs; prints their listening ports.
	set_processes() {
		local guid=$1 n=$2 conns i ports
		conns=$(((WRK_CONNECTIONS + n - 1) / n))
		api PATCH "/v1/content/$guid" "{\"min_processes\":$n,\"max_processes\":$n,\"max_conns_per_process\":$conns}" >/dev/null ||
			die "PATCH content $guid with min_processes=$n failed"
		curl -fs -o /dev/null -H "$AUTH" "$CONNECT/content/$guid/" || true # starts the first process if none runs
		for i in $(seq 600); do
			ports=$(process_ports "$guid")
			if [ "$(wc -w <<<"$ports")" = "$n" ]; then
				echo "$ports"
				return
			fi
			sleep 0.2
		done
		die "content $guid: the jobs API did not list $n running processes with a port within 120s (have: $(api GET "/v1/content/$guid/jobs"))"
	}

	# process_ports GUID: the loopback ports the content's running jobs
	# listen on, found by pid (and the pid's children: gunicorn's workers).
	process_ports() {
		local pid p ports=()
		for pid in $(api GET "/v1/content/$1/jobs" | python3 -c '
import json, sys
for j in json.load(sys.stdin):
    if j.get("status") == 0 and j.get("pid"):
        print(j["pid"])'); do
			local tree=" $pid $(pgrep -P "$pid" | tr '\n' ' ')"
			p=$(ss -ltnpH 2>/dev/null | awk -v tree="$tree" '{
				if (match($0, /pid=[0-9]+/)) { id = substr($0, RSTART + 4, RLENGTH - 4); if (index(tree, " " id " ")) { n = split($4, a, ":"); print a[n]; exit } }
			}')
			[ -n "$p" ] && ports+=("$p")
		done
		echo "${ports[*]}"
	}

	for d in fastapi fastapi2 flask; do
		cp -r "$here/testdata/${d%2}" "$work/$d"
	done
	log "deploying the FastAPI app (builds its environment)"
	fguid=$(deploy fastapi "$work/fastapi" "$work/deploy-fastapi.log")
	[ -n "$fguid" ] || die "no content URL in the deploy log: $(tail -n 20 "$work/deploy-fastapi.log")"
	wait_up atrium-up "$CONNECT/content/$fguid/" "$AUTH"

	# The deploy time: a second item, same requirements, warm cache.
	log "timing the deploy of a second FastAPI item (environment cache warm)"
	t0=$(now_ms)
	guid2=$(deploy fastapi "$work/fastapi2" "$work/deploy-fastapi2.log" --new)
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$CONNECT/content/$guid2/")
	t1=$(now_ms)
	[ "$code" = 200 ] || die "the second FastAPI item answers $code right after its deploy"
	printf 'time\tdeploy\t%s\n' "$((t1 - t0))" >>"$raw"
	grep -q 'uv pip install\|Building' "$work/deploy-fastapi2.log" &&
		printf 'note\tdeploy\t%s\n' "the second deploy's log shows an environment build: $(grep -m1 'uv pip install\|Building' "$work/deploy-fastapi2.log")" >>"$raw"

	if supports_processes "$fguid"; then
		read -r -a fports <<<"$(set_processes "$fguid" 2)"
		direct=""
		for p in "${fports[@]}"; do
			curl -fs -o /dev/null "http://127.0.0.1:$p/" || die "FastAPI process on port $p does not answer /"
			direct+="http://127.0.0.1:$p/ "
		done
		through="$CONNECT/content/$fguid/ $CONNECT/content/$fguid/"
		# For reference, not a target: nginx in Atrium's place, in front
		# of the same processes, passing /content/{guid}/ on as / as
		# Connect does.
		nport=$(free_port)
		nginx_config "$work/nginx-fastapi" "$nport" "/content/$fguid/" http://backend/ "${fports[@]/#/127.0.0.1:}"
		start nginx-fastapi "$NGINX" -c "$work/nginx-fastapi/nginx.conf"
		nginx_url=http://127.0.0.1:$nport/content/$fguid/
		wait_up nginx-fastapi "$nginx_url"
		# And the bare epoll proxy of the proxy section, also for
		# reference: what any proxy costs in front of these processes.
		[ -x "$work/bin/epollfront" ] || (cd "$root/e2e" && go build -o "$work/bin/" ./benchcmd/epollfront) >&2
		eport=$(free_port)
		ebackends=$(printf 'http://127.0.0.1:%s,' "${fports[@]}")
		start epoll-fastapi "$work/bin/epollfront" -listen "127.0.0.1:$eport" -backend "${ebackends%,}" \
			-strip "/content/$fguid/" -loops "$(nproc)"
		epoll_url=http://127.0.0.1:$eport/content/$fguid/
		wait_up epoll-fastapi "$epoll_url"
		half=$((WRK_CONNECTIONS / 2))
		# For reference: straight to the processes, but with the headers
		# Connect sends every request (what writeFastHead adds, and the
		# credentials of the bench's admin key): the app parses them,
		# whichever proxy sent them, so this is the most any proxy in
		# Connect's place could reach.
		connect_headers=("$AUTH" "X-Forwarded-For: 127.0.0.1" "X-Forwarded-Host: 127.0.0.1:$cport"
			"X-Forwarded-Proto: http" "X-Forwarded-Prefix: /content/$fguid/"
			'RStudio-Connect-Credentials: {"groups":[],"user":"admin"}')
		for r in $(seq "$ROUNDS"); do
			log "fastapi, round $r/$ROUNDS"
			CPU_PIDS=${PID[atrium-up]} wrk_run fastapi atrium "$r" 1 "$half" "$through" "$AUTH"
			wrk_run fastapi direct "$r" 1 "$half" "$direct"
			wrk_run fastapi direct-headers "$r" 1 "$half" "$direct" "${connect_headers[@]}"
			CPU_PIDS="${PID[nginx-fastapi]} $(pgrep -P "${PID[nginx-fastapi]}" | tr '\n' ' ')" wrk_run fastapi nginx "$r" 1 "$half" "$nginx_url $nginx_url"
			CPU_PIDS=${PID[epoll-fastapi]} wrk_run fastapi epoll "$r" 1 "$half" "$epoll_url $epoll_url"
		done
		stop_server nginx-fastapi
		stop_server epoll-fastapi

		log "deploying the Flask API"
		lguid=$(deploy api "$work/flask" "$work/deploy-flask.log")
		set_processes "$lguid" "$FLASK_PROCS" >/dev/null
		wait_up atrium-up "$CONNECT/content/$lguid/" "$AUTH"
		for r in $(seq "$ROUNDS"); do
			log "flask, round $r/$ROUNDS"
			CPU_PIDS=${PID[atrium-up]} wrk_run flask atrium "$r" 2 "$WRK_CONNECTIONS" "$CONNECT/content/$lguid/" "$AUTH"
		done
	else
		why="PATCH /__api__/v1/content/{guid} does not take min_processes on this build: no multi-process content"
		printf 'skip\tfastapi\t%s\n' "$why" >>"$raw"
		printf 'skip\tflask\t%s\n' "$why" >>"$raw"
	fi
	versions+=(
		"connect: $("$atrium" version 2>/dev/null | head -n1), $("$clients/bin/rsconnect" version 2>/dev/null | head -n1 || echo rsconnect), uv $("$tools/bin/uv" --version | awk '{print $2}'), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (fastapi reference)"
		"app servers: $(for e in "$data"/connect/envs/*/; do "$e/bin/python" "$here/connect_versions.py" fastapi uvicorn flask gunicorn; done 2>/dev/null | sort -u | paste -sd';' | sed 's/;/; /g')"
	)
fi

# --- report -----------------------------------------------------------------

versions+=("wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}' || true)")
printf '%s\n' "${versions[@]}" >"$results/versions.txt"
python3 "$here/connect_report.py" --raw "$raw" --versions "$results/versions.txt" \
	--rounds "$ROUNDS" --wrk "-c$WRK_CONNECTIONS -d$WRK_DURATION --latency" --flask-procs "$FLASK_PROCS" \
	--cpus "$(nproc)" --load "$load_start" --load-end "$(cut -d' ' -f1-3 /proc/loadavg)" >"$results/table.txt"
cat "$results/table.txt"
cp "$results/table.txt" "$cache/bench-results/connect-latest.txt"
log "results in $results (table also in $cache/bench-results/connect-latest.txt)"
