#!/bin/sh
# System test of an NBD export at the protocol level.  nbdkit serves it in
# a temporary folder four ways: writable, read-only (-r), with block size
# constraints enforced (the blocksize-policy filter) and over TCP on
# loopback; nbd_bad_input sends each what the NBD protocol forbids and
# nbd_probe checks what a libnbd client sees.
#
# What is served is the nbdkit plugin NBD_PLUGIN with the parameters
# NBD_PLUGIN_ARGS (NBD_RO_PLUGIN_ARGS for the read-only export); by default
# nbdkit's memory plugin.  For the MixSAN export, with a cluster running
# that holds the volume:
#   NBD_PLUGIN=$MIXSAN_BUILD_ROOT/nbd/nbdkit-mixsan-plugin.so
#   NBD_PLUGIN_ARGS="pool=rbd volume=v1"
#   NBD_RO_PLUGIN_ARGS="pool=rbd volume=v1 snapshot=s1"
#   NBD_SIZE=<the volume's size in bytes>
#   NBD_MIN_BLOCK=<the minimum block size the plugin advertises, if any>
# The folder (with every server's log and every program's output) is kept
# when something fails, or always with MIXSAN_TEST_KEEP=1.
set -u
BUILD="${MIXSAN_BUILD_ROOT:?}"
BAD="$BUILD/tests/nbd/nbd_bad_input"
PROBE="$BUILD/tests/nbd/nbd_probe"
NBD_PLUGIN="${NBD_PLUGIN:-memory}"
NBD_SIZE="${NBD_SIZE:-67108864}"
NBD_PLUGIN_ARGS="${NBD_PLUGIN_ARGS:-size=$NBD_SIZE}"
NBD_RO_PLUGIN_ARGS="${NBD_RO_PLUGIN_ARGS:-$NBD_PLUGIN_ARGS}"
NBD_MIN_BLOCK="${NBD_MIN_BLOCK:-}"
NBD_PLUGIN_PATH="$NBD_PLUGIN"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

mx_require nbdkit
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-nbd-XXXXXX")
fails=0

trap mx_cleanup EXIT

# serve NAME "PLUGIN PARAMETERS" NBDKIT-OPTIONS...: nbdkit serving the
# plugin; the options say where it listens.
serve() {
	name=$1
	params=$2
	shift 2
	# shellcheck disable=SC2086 # the plugin parameters are separate words
	nbd_serve "$name" "$@" "$NBD_PLUGIN" $params
}

stop() {
	nbd_stop "$1"
}

# check NAME COMMAND...: run a test program; it must exit 0.  Its output
# is shown either way and kept in $DIR/NAME.out.
check() {
	name=$1
	shift
	echo "== $name: $*"
	if "$@" >"$DIR/$name.out" 2>&1; then
		cat "$DIR/$name.out"
	else
		cat "$DIR/$name.out"
		echo "FAIL: $name (exit status $?)"
		fails=$((fails + 1))
	fi
}

# probe NAME URI [OPTIONS...]: nbd_probe, where libnbd was there to build it.
probe() {
	name=$1
	shift
	if [ -x "$PROBE" ]; then
		check "$name" "$PROBE" "$@" --expect-size "$NBD_SIZE"
	else
		echo "== $name: skipped (nbd_probe not built: no libnbd)"
	fi
}

min_block=""
[ -n "$NBD_MIN_BLOCK" ] && min_block="--min-block $NBD_MIN_BLOCK"

# shellcheck disable=SC2086 # $min_block is an option and its value, or nothing
if serve rw "$NBD_PLUGIN_ARGS" -U "$DIR/rw.sock"; then
	check bad_input_rw "$BAD" --unix "$DIR/rw.sock" $min_block
	probe probe_rw "nbd+unix:///?socket=$DIR/rw.sock"
	stop rw
fi

# shellcheck disable=SC2086
if serve ro "$NBD_RO_PLUGIN_ARGS" -r -U "$DIR/ro.sock"; then
	check bad_input_ro "$BAD" --unix "$DIR/ro.sock" --read-only $min_block
	probe probe_ro "nbd+unix:///?socket=$DIR/ro.sock" --read-only
	stop ro
fi

# Size constraints advertised and enforced: misaligned and oversized
# requests must be refused.
if serve bs "$NBD_PLUGIN_ARGS blocksize-minimum=512 blocksize-preferred=4096 \
		blocksize-maximum=1M blocksize-error-policy=error" \
		--filter=blocksize-policy -U "$DIR/bs.sock"; then
	check bad_input_bs "$BAD" --unix "$DIR/bs.sock" --min-block 512
	probe probe_bs "nbd+unix:///?socket=$DIR/bs.sock"
	stop bs
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
if serve tcp "$NBD_PLUGIN_ARGS" -i 127.0.0.1 -p "$PORT"; then
	check bad_input_tcp "$BAD" --tcp "127.0.0.1:$PORT" $min_block
	probe probe_tcp "nbd://127.0.0.1:$PORT"
	stop tcp
fi

if [ "$fails" = 0 ]; then
	echo "nbd_protocol: all passed"
else
	echo "nbd_protocol: $fails failed"
fi
[ "$fails" = 0 ]
