#!/bin/sh
# Locality on the multi-host rig (docs/read-policies.md; docs/performance.md,
# "Locality"): three hosts, each with a monitor and one OSD; a pool of 3
# replicas with host as the failure domain, so every PG has a copy on every
# host.  A client on host 1 (where a VM beside its disk would be) reads the
# same objects from the primaries, then from the nearest replica (its own
# host's OSD).  Runs as root; prints objbench's table.
#
#   bench/locality.sh BUILD [SECONDS_PER_JOB]
set -u
BUILD_ARG=$1
SECS=${2:-10}
HERE=$(cd "$(dirname "$0")/../tests/rig" && pwd)
MIXSAN_BUILD_ROOT=$(cd "$BUILD_ARG" && pwd)
export MIXSAN_BUILD_ROOT
P="mxloc$$-"
# shellcheck source=../tests/rig/lib.sh
. "$HERE/lib.sh"

osds_up() {
	[ "$(mixsan_in 1 --mon "$MON_LIST" --json osd ls 2>/dev/null | grep -c '"up": true')" = 3 ]
}

rig_init locality 3 >&2
start_mons 3
if ! wait_until 30 agree 1 2 3; then
	fail "no quorum within 30 s"
	exit 1
fi
for h in 1 2 3; do
	sh "$RIG" --prefix "$P" exec "$h" "$OSD_BIN" --data "$DIR/osd.h$h" --mon "$MON_LIST" \
		--addr "$(rig addr "$h"):0" --location "host=h$h" >>"$DIR/osd.h$h.log" 2>&1 &
done
if ! wait_until 60 osds_up; then
	fail "the OSDs did not come up within 60 s"
	exit 1
fi
MIXSAN_TEST_MON="$MON_LIST" timeout 600 sh "$RIG" --prefix "$P" exec 1 \
	"$BUILD/bench/objbench" "$SECS" --locality host=h1
