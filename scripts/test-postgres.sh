#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for Atrium's tests.
#
#   scripts/test-postgres.sh start DIR   # prints the DSN (one line on stdout)
#   scripts/test-postgres.sh stop DIR    # stops the cluster and removes DIR
#
# Typical use:
#   export ATRIUM_TEST_POSTGRES_DSN="$(scripts/test-postgres.sh start /tmp/atrium-pg)"
#   (cd shared && go test ./...)
#   scripts/test-postgres.sh stop /tmp/atrium-pg
#
# The cluster listens on 127.0.0.1 only, on a free port, with trust auth, and
# keeps its unix socket inside DIR so it never collides with a system cluster.
# Durability is switched off (fsync etc.): the data is thrown away anyway.
# Everything except the DSN goes to stderr; server logs go to DIR/log.
set -euo pipefail

MARKER=.atrium-test-postgres
DB_NAME=atrium_test

die() { echo "test-postgres: $*" >&2; exit 1; }
log() { echo "test-postgres: $*" >&2; }

usage() { die "usage: $0 start|stop DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
[[ -n $dir ]] || usage
# Absolute path: it ends up in the server config and in commands run from other directories.
case $dir in
/*) ;;
*) dir="$PWD/$dir" ;;
esac
dir=${dir%/}
[[ -n $dir && $dir != / ]] || die "refusing to use / as DIR"

find_bindir() {
	local d
	# Newest major version first.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

ensure_binaries() {
	if bindir=$(find_bindir); then
		return 0
	fi
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install the 'postgresql' package (as root: apt-get install -y postgresql)"
	log "installing PostgreSQL (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
	bindir=$(find_bindir) || die "PostgreSQL installed but no server binaries under /usr/lib/postgresql/*/bin"
}

# PostgreSQL refuses to run as root, so as root everything server-side runs as
# the 'postgres' OS user; otherwise as the current user.
setup_user() {
	if [[ $(id -u) -eq 0 ]]; then
		run_user=postgres
		if ! id "$run_user" >/dev/null 2>&1; then
			log "creating OS user $run_user"
			useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$run_user" >&2
		fi
	else
		run_user=$(id -un)
	fi
}

as_user() {
	# Run from DIR: the user may not be allowed into the caller's working directory.
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$dir" && runuser -u "$run_user" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	local p
	for ((p = 54320 + RANDOM % 1000; p < 60000; p++)); do
		# A failed connect means nothing listens there.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free TCP port found"
}

is_running() {
	[[ -f $dir/data/PG_VERSION ]] && as_user "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

dsn_for() { echo "postgres://postgres@127.0.0.1:$1/$DB_NAME?sslmode=disable"; }

start() {
	ensure_binaries
	setup_user

	if [[ -e $dir ]]; then
		if [[ -f $dir/$MARKER ]]; then
			if is_running && [[ -f $dir/port ]]; then
				log "cluster in $dir is already running"
				dsn_for "$(cat "$dir/port")"
				return 0
			fi
			log "removing stale cluster in $dir"
			rm -rf "$dir"
		elif [[ -n $(ls -A "$dir") ]]; then
			die "$dir exists, is not empty and was not made by this script; refusing to touch it"
		fi
	fi

	mkdir -p "$dir"
	touch "$dir/$MARKER"
	mkdir -p "$dir/log" "$dir/run"
	chmod 0700 "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown -R "$run_user:" "$dir"
		as_user test -w "$dir" || die "user $run_user cannot reach $dir (a parent directory is not searchable); use a directory under /tmp"
	fi

	log "initdb in $dir/data ($bindir)"
	as_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
		>"$dir/log/initdb.log" 2>&1 || { cat "$dir/log/initdb.log" >&2; die "initdb failed"; }

	# Trust, but only over loopback TCP and the private socket inside DIR.
	cat >"$dir/data/pg_hba.conf" <<-'EOF'
		local all all               trust
		host  all all 127.0.0.1/32  trust
	EOF

	local port attempt
	for attempt in 1 2 3; do
		port=$(free_port)
		cat >"$dir/data/postgresql.auto.conf" <<-EOF
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$dir/run'
			max_connections = 200
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			logging_collector = off
		EOF
		chown "$run_user:" "$dir/data/pg_hba.conf" "$dir/data/postgresql.auto.conf" 2>/dev/null || true
		if as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log/postgres.log" -w -t 60 start >&2; then
			break
		fi
		# Most likely someone took the port between free_port and start.
		log "start on port $port failed (attempt $attempt), see $dir/log/postgres.log"
		tail -n 20 "$dir/log/postgres.log" >&2 || true
		[[ $attempt -lt 3 ]] || die "could not start PostgreSQL"
	done
	echo "$port" >"$dir/port"

	as_user "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c "CREATE DATABASE $DB_NAME" >&2 || die "could not create database $DB_NAME"

	local dsn
	dsn=$(dsn_for "$port")
	echo "$dsn" >"$dir/dsn"
	log "ready: $dsn"
	echo "$dsn"
}

stop() {
	if [[ ! -e $dir ]]; then
		log "$dir does not exist; nothing to stop"
		return 0
	fi
	[[ -f $dir/$MARKER ]] || die "$dir was not made by this script; refusing to touch it"
	if bindir=$(find_bindir); then
		setup_user
		if is_running; then
			as_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2
		fi
	fi
	rm -rf "$dir"
	log "stopped and removed $dir"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
