# shellcheck shell=sh disable=SC2034 # MON and the like are for the sourcing script
# Sourced by the shell tests that start nbdkit and development clusters.
# They set DIR (their folder) and count failures in fails; NBD_PLUGIN_PATH
# names the plugin, if any, and MIXSAN the command line, if a cluster runs.
#
# nbdkit_run runs nbdkit; when the plugin was built with the address and
# undefined behaviour sanitizers (the build-asan tree), their runtimes are
# preloaded, as they must come first in a program not built with them.
# Leaks are checked by the library's own tests, not in nbdkit's process.
NBDKIT_PRELOAD=""
if [ -n "${NBD_PLUGIN_PATH:-}" ] && [ -f "$NBD_PLUGIN_PATH" ] &&
	ldd "$NBD_PLUGIN_PATH" 2>/dev/null | grep -q libasan; then
	for lib in libasan.so libubsan.so; do
		p=$(${CC:-cc} -print-file-name=$lib 2>/dev/null)
		[ -f "$p" ] && NBDKIT_PRELOAD="$NBDKIT_PRELOAD${NBDKIT_PRELOAD:+ }$p"
	done
fi
nbd_pids=""

# mx_preloaded COMMAND...: the command, with those runtimes preloaded if
# needed (also for fio loading the fio engine, tests/fio).
mx_preloaded() {
	if [ -n "$NBDKIT_PRELOAD" ]; then
		env LD_PRELOAD="$NBDKIT_PRELOAD" \
			ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0" "$@"
	else
		"$@"
	fi
}

nbdkit_run() {
	mx_preloaded nbdkit "$@"
}

# nbd_serve NAME NBDKIT-ARGUMENTS...: start nbdkit in the foreground of a
# background job (it ends with the test), its pid in $DIR/NAME.pid and its
# output in $DIR/NAME.log, and wait until it accepts connections (it
# writes the pid file then).  1, with the log shown, if it did not start.
nbd_serve() {
	name=$1
	shift
	rm -f "$DIR/$name.pid"
	nbdkit_run --exit-with-parent -f -P "$DIR/$name.pid" "$@" >>"$DIR/$name.log" 2>&1 &
	pid=$!
	nbd_pids="$nbd_pids $pid"
	i=0
	while [ ! -s "$DIR/$name.pid" ]; do
		if [ $i -ge 100 ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "FAIL: nbdkit ($name) did not start within 10 s:"
			cat "$DIR/$name.log"
			fails=$((fails + 1))
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

# nbd_stop NAME: stop that server and wait for it (a writable export holds
# its volume's lock until it is gone).
nbd_stop() {
	[ -s "$DIR/$1.pid" ] || return 0
	p=$(cat "$DIR/$1.pid")
	kill "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	rm -f "$DIR/$1.pid"
}

# nbd_stop_all: every server started here (for the exit trap).
nbd_stop_all() {
	for p in $nbd_pids; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
}

# mx_require TOOL...: skip the test (exit 77) unless every tool is there.
mx_require() {
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			echo "$t is not installed: skipped"
			exit 77
		fi
	done
}

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# mx_cluster_up: a development cluster of 3 OSDs in $DIR/cluster on a free
# loopback port; sets MIXSAN_DATA and MON.  Exits on failure.
mx_cluster_up() {
	export MIXSAN_DATA="$DIR/cluster"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	MON="127.0.0.1:$port"
	"$MIXSAN" cluster up --osds 3 --port "$port" >"$DIR/up.log" 2>&1 || {
		fail "cluster up"
		cat "$DIR/up.log"
		exit 1
	}
}

# mx_cleanup: the exit trap: servers and cluster stopped, the folder
# removed unless something failed (or MIXSAN_TEST_KEEP=1).
mx_cleanup() {
	nbd_stop_all
	[ -n "${MIXSAN:-}" ] && [ -d "$DIR/cluster" ] && "$MIXSAN" cluster down >/dev/null 2>&1
	if [ "$fails" = 0 ] && [ "${MIXSAN_TEST_KEEP:-0}" = 0 ]; then
		rm -rf "$DIR"
	else
		echo "kept $DIR"
	fi
}
