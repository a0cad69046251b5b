#!/usr/bin/env bash
# Keycloak, a real external OpenID provider for Atrium's sign-on tests.
#
#   scripts/keycloak.sh install        # prints the Keycloak home (one line on stdout)
#   scripts/keycloak.sh java-home      # prints the JDK Keycloak runs on
#   scripts/keycloak.sh instance DIR   # makes DIR a private Keycloak home, prints DIR
#   scripts/keycloak.sh run ARGS...    # installs if needed, then runs the cached
#                                      # home's bin/kc.sh ARGS with JAVA_HOME set, e.g.
#                                      #   scripts/keycloak.sh run start-dev --http-port=8180
#
# Keycloak keeps its database, realm imports (data/import) and build state
# (lib/quarkus) inside its home, so a test must not run the cached home
# itself: `instance DIR` gives it a home of its own in DIR, in which the
# small mutable parts (bin, conf, lib/quarkus, …) are copies and the 170 MB of
# jars (lib/lib) is a symlink into the cache. Put realm files into
# DIR/data/import and run `JAVA_HOME=$(scripts/keycloak.sh java-home)
# DIR/bin/kc.sh start-dev --import-realm …`. e2e/keycloaktest does exactly that.
#
# `install` also primes the cache for dev mode: Keycloak ships built for
# production, and `start-dev` would otherwise spend ~20 s rebuilding itself
# (Quarkus re-augmentation) on every fresh instance. Priming runs start-dev
# once in the unpacked tree, on a random loopback port, until the database is
# initialised, then throws its data away. If priming fails the install still
# succeeds; start-dev then rebuilds each instance at start, only slower.
# `run start` (production mode) rebuilds the cached home for production and so
# undoes the priming; `install` does not redo it.
#
# The server distribution (org.keycloak:keycloak-quarkus-dist, a zip) is
# fetched by Maven itself, so the repository it comes from is whatever the
# host's Maven settings say (settings.xml, mirrors); this script names none.
# It is unpacked into a cache outside the clone:
#   ${ATRIUM_CACHE:-$HOME/.cache/atrium}/keycloak-VERSION/
# Installing is idempotent and safe to interrupt or to run concurrently: the
# zip is unpacked into a temporary directory that is renamed into place only
# when complete, under a lock.
#
# Environment:
#   KEYCLOAK_VERSION     the version to install (default below)
#   ATRIUM_CACHE         cache root (default $HOME/.cache/atrium)
#   KEYCLOAK_JAVA_HOME   the JDK to run Keycloak on, used as is (skips the search)
#
# JDK choice: Keycloak 26 is supported on Java 17, 21 and 25, and prefers the
# newest. The script looks at $KEYCLOAK_JAVA_HOME, $JAVA_HOME, the `java` on
# PATH and every JDK under /usr/lib/jvm, /usr/java, /opt/java and /opt, reads
# each one's major version, and takes the newest in [JAVA_MIN, JAVA_MAX]; if
# none is in range it takes the newest one at least JAVA_MIN, with a warning.
#
# Everything except the printed path goes to stderr.
set -euo pipefail

KEYCLOAK_VERSION=${KEYCLOAK_VERSION:-26.7.3}
JAVA_MIN=17 # oldest JDK this Keycloak runs on
JAVA_MAX=25 # newest JDK this Keycloak is supported on
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

die() { echo "keycloak: $*" >&2; exit 1; }
log() { echo "keycloak: $*" >&2; }

usage() { die "usage: $0 install | java-home | instance DIR | run KC_ARGS..."; }

cache_root() { echo "${ATRIUM_CACHE:-$HOME/.cache/atrium}"; }

# java_major JAVA_HOME: prints the JDK's major version (17, 21, 25, …) or
# nothing when it is not a usable JDK/JRE.
java_major() {
	local home=$1 v=""
	[[ -x $home/bin/java ]] || return 0
	if [[ -r $home/release ]]; then
		v=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release" | head -n1)
	fi
	if [[ -z $v ]]; then
		v=$("$home/bin/java" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1) || true
	fi
	v=${v#1.} # 1.8.0 → 8.0
	v=${v%%[.+-]*}
	[[ $v =~ ^[0-9]+$ ]] && echo "$v"
	return 0
}

# choose_java_home: prints the JDK to run Keycloak on.
choose_java_home() {
	if [[ -n ${KEYCLOAK_JAVA_HOME:-} ]]; then
		[[ -x $KEYCLOAK_JAVA_HOME/bin/java ]] || die "KEYCLOAK_JAVA_HOME=$KEYCLOAK_JAVA_HOME has no bin/java"
		echo "$KEYCLOAK_JAVA_HOME"
		return
	fi
	local -a candidates=()
	[[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME")
	if command -v java >/dev/null 2>&1; then
		local j
		j=$(readlink -f "$(command -v java)")
		candidates+=("$(dirname "$(dirname "$j")")")
	fi
	local d
	for d in /usr/lib/jvm/* /usr/java/* /opt/java/* /opt/*; do
		[[ -d $d && -x $d/bin/java ]] && candidates+=("$d")
	done
	local best="" best_v=0 any="" any_v=0 c real v
	declare -A seen=()
	for c in "${candidates[@]}"; do
		real=$(readlink -f "$c") || continue
		[[ -n ${seen[$real]:-} ]] && continue
		seen[$real]=1
		v=$(java_major "$real")
		[[ -n $v ]] || continue
		if ((v >= JAVA_MIN && v <= JAVA_MAX && v > best_v)); then
			best=$real best_v=$v
		fi
		if ((v >= JAVA_MIN && v > any_v)); then
			any=$real any_v=$v
		fi
	done
	if [[ -n $best ]]; then
		echo "$best"
	elif [[ -n $any ]]; then
		log "warning: no JDK $JAVA_MIN..$JAVA_MAX found; trying Java $any_v at $any"
		echo "$any"
	else
		die "no JDK >= $JAVA_MIN found (looked at JAVA_HOME, PATH, /usr/lib/jvm, /usr/java, /opt); set KEYCLOAK_JAVA_HOME"
	fi
}

# prime HOME: builds the unpacked tree HOME for dev mode (see the header).
# Best effort: returns non-zero when it did not work.
prime() {
	local home=$1 java_home major
	java_home=$(choose_java_home) || return 1
	major=$(java_major "$java_home")
	log "priming for dev mode on Java $major (one-time, about a minute)"
	(
		# Build options could come from the caller's environment: start clean.
		while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(KC_|KEYCLOAK_ADMIN|JAVA_OPTS)' || true)
		export JAVA_HOME=$java_home
		# kc.launch.mode=exit_before_bootstrap: stop once the server is built and
		# its database initialised. Port 0: any free port, nothing is served.
		timeout 600 "$home/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port=0 \
			--http-management-port=0 -Dkc.launch.mode=exit_before_bootstrap \
			>"$home/prime.log" 2>&1
	) || { log "priming failed (see below); start-dev will rebuild at each start"; tail -n 20 "$home/prime.log" >&2; return 1; }
	rm -rf "$home/data" "$home/prime.log"
	echo "$major" >"$home/.atrium-primed-java"
}

install() {
	local root dest lock tmp
	root=$(cache_root)
	dest=$root/keycloak-$KEYCLOAK_VERSION
	if [[ -x $dest/bin/kc.sh ]]; then
		echo "$dest"
		return
	fi
	command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven fetches the Keycloak distribution"
	command -v unzip >/dev/null 2>&1 || die "unzip not found"
	mkdir -p "$root"
	lock=$root/.keycloak-$KEYCLOAK_VERSION.lock
	exec 9>"$lock"
	flock 9
	if [[ -x $dest/bin/kc.sh ]]; then # another install finished while we waited
		echo "$dest"
		return
	fi
	# Leftovers of interrupted installs: nobody else works on them (we hold the lock).
	rm -rf "$root/.keycloak-$KEYCLOAK_VERSION.tmp."*
	tmp=$(mktemp -d "$root/.keycloak-$KEYCLOAK_VERSION.tmp.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	log "fetching org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip with Maven"
	# Maven runs on its own default JDK; any will do for fetching.
	if ! mvn -B -q -Dstyle.color=never "$MAVEN_DEPENDENCY_PLUGIN:copy" \
		-Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
		-DoutputDirectory="$tmp/zip" -Dmdep.overWriteReleases=true >"$tmp/mvn.log" 2>&1; then
		tail -n 30 "$tmp/mvn.log" >&2
		die "Maven could not fetch org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip"
	fi
	local zip=$tmp/zip/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip
	[[ -s $zip ]] || die "Maven left no $zip"
	log "unpacking $(du -h "$zip" | cut -f1)"
	unzip -q "$zip" -d "$tmp/unpacked" || die "unzip $zip failed"
	rm -rf "$tmp/zip"
	local top
	top=$(find "$tmp/unpacked" -mindepth 1 -maxdepth 1 -type d | head -n1)
	[[ -n $top && -x $top/bin/kc.sh ]] || die "unexpected layout in $zip: no bin/kc.sh"
	prime "$top" || true
	mv "$top" "$dest"
	rm -rf "$tmp"
	trap - EXIT
	log "installed Keycloak $KEYCLOAK_VERSION in $dest"
	echo "$dest"
}

# instance DIR: makes DIR a private Keycloak home backed by the cache.
instance() {
	local dir=$1 home
	home=$(install)
	if [[ -e $dir ]] && [[ -n $(ls -A "$dir") ]]; then
		die "instance: $dir exists and is not empty"
	fi
	mkdir -p "$dir/lib" "$dir/data/import"
	cp -R "$home/bin" "$home/conf" "$home/themes" "$home/providers" "$dir/"
	cp "$home/version.txt" "$dir/" 2>/dev/null || true
	cp -R "$home/lib/app" "$home/lib/quarkus" "$home/lib/quarkus-run.jar" "$dir/lib/"
	ln -s "$home/lib/lib" "$dir/lib/lib"
	if [[ -r $home/.atrium-primed-java ]]; then
		local want got
		want=$(cat "$home/.atrium-primed-java")
		got=$(java_major "$(choose_java_home)")
		[[ $want == "$got" ]] || log "warning: the cache was primed on Java $want but runs on Java $got"
	fi
	echo "$dir"
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
install)
	[[ $# -eq 0 ]] || usage
	install
	;;
java-home)
	[[ $# -eq 0 ]] || usage
	choose_java_home
	;;
instance)
	[[ $# -eq 1 && -n $1 ]] || usage
	instance "$(realpath -m "$1")"
	;;
run)
	home=$(install)
	JAVA_HOME=$(choose_java_home)
	export JAVA_HOME
	log "Keycloak $KEYCLOAK_VERSION on $("$JAVA_HOME/bin/java" -version 2>&1 | head -n1) ($JAVA_HOME)"
	exec "$home/bin/kc.sh" "$@"
	;;
*)
	usage
	;;
esac
