#!/bin/sh
# A boot storm of linked clones (a VDI host starting its desktops): a
# development cluster (1 monitor, 3 OSDs on the local disk, a pool of 3
# replicas, failure domain osd), the golden image of bench/boottrace.sh
# imported into the volume "golden", its snapshot golden@base protected,
# N linked clones vm1..vmN of it, and bootstorm replaying the recorded boot
# against all N at once through one client, as the host's NBD export would.
# Every configuration of CONFIGS runs on fresh clones.
#
#   bench/bootstorm.sh BUILD [N]          (N default 20)
#
# Environment: BOOTSTORM_TRACE_DIR, a folder holding boot.trace and
# root.img from an earlier boottrace.sh (made there first if it has none);
# BOOTSTORM_PAYLOAD_MIB (default 160) for a new trace; BOOTSTORM_CONFIGS
# (default: the CONFIGS below); BOOTSTORM_SECONDS, the bound of each storm
# (default 600); BOOTSTORM_VERIFY=0 to leave out the comparison of every
# read with the golden image.  Each storm's JSON object is kept in the
# trace folder as bootstorm-CONFIG-N.json.
set -eu
BUILD=$(cd "$1" && pwd)
N=${2:-20}
case $N in
'' | *[!0-9]*) echo "usage: bootstorm.sh BUILD [N]" >&2 && exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
STORM="$BUILD/bench/bootstorm"
SECS=${BOOTSTORM_SECONDS:-600}
POOL=storm

# The configurations, one storm each.  A configuration is a name and the
# options it gives bootstorm (config_args).
CONFIGS=${BOOTSTORM_CONFIGS:-"nocache cache cache-noahead"}
config_args() {
	case $1 in
	nocache) echo "" ;;
	cache) echo "--cache-mib 512" ;;
	cache-noahead) echo "--cache-mib 512 --readahead-kib off" ;;
	*)
		echo "bootstorm.sh: unknown configuration $1" >&2
		return 1
		;;
	esac
}
for c in $CONFIGS; do
	config_args "$c" >/dev/null
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-bootstorm-XXXXXX")
fails=0
# shellcheck source=../tests/nbd/lib.sh
. "$HERE/../tests/nbd/lib.sh"
trap mx_cleanup EXIT

# The trace: kept from an earlier run, or recorded now.
TRACE_DIR=${BOOTSTORM_TRACE_DIR:-$DIR/trace}
if [ -f "$TRACE_DIR/boot.trace" ] && [ -f "$TRACE_DIR/root.img" ]; then
	echo "bootstorm: the trace of $TRACE_DIR"
else
	st=0
	timeout -k 10 900 sh "$HERE/boottrace.sh" "$TRACE_DIR" "${BOOTSTORM_PAYLOAD_MIB:-160}" || st=$?
	if [ "$st" = 77 ]; then
		exit 77
	fi
	[ "$st" = 0 ] || {
		fail "boottrace.sh (status $st)"
		exit 1
	}
fi
verify=""
if [ "${BOOTSTORM_VERIFY:-1}" != 0 ]; then
	verify="--verify $TRACE_DIR/root.img"
fi

mx_cluster_up
"$MIXSAN" pool create "$POOL" --size 3 --pg-num 64 --failure-domain osd >/dev/null
t0=$(date +%s)
"$MIXSAN" volume import "$TRACE_DIR/root.img" "$POOL/golden" >/dev/null
"$MIXSAN" volume snap create "$POOL/golden@base" >/dev/null
"$MIXSAN" volume snap protect "$POOL/golden@base" >/dev/null
echo "bootstorm: golden volume imported and snapshotted in $(($(date +%s) - t0)) s"

for config in $CONFIGS; do
	i=1
	while [ $i -le "$N" ]; do
		"$MIXSAN" volume clone "$POOL/golden@base" "$POOL/vm$i" >/dev/null
		i=$((i + 1))
	done
	echo "bootstorm: $config, $N clones"
	st=0
	# shellcheck disable=SC2046,SC2086 # the options are words
	timeout -k 10 $((SECS + 120)) "$STORM" --mon "$MON" --pool "$POOL" --prefix vm \
		--clones "$N" --trace "$TRACE_DIR/boot.trace" --seconds "$SECS" $verify \
		$(config_args "$config") --json >"$DIR/storm.json" || st=$?
	if [ "$st" = 0 ]; then
		cp "$DIR/storm.json" "$TRACE_DIR/bootstorm-$config-$N.json"
		cat "$DIR/storm.json"
	else
		fail "bootstorm $config (status $st)"
	fi
	i=1
	while [ $i -le "$N" ]; do
		"$MIXSAN" volume rm "$POOL/vm$i" >/dev/null
		i=$((i + 1))
	done
done
[ "$fails" = 0 ]
