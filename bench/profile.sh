#!/bin/sh
# Where the time goes in one job: a development cluster as in nbdbench.sh
# (1 monitor, 3 OSDs, a pool of 3 replicas, a 1 GiB volume of which 256 MiB
# are written first), one fio job through the fio engine, and while it runs
# perf samples every process on the machine (perf record -a -g, 999 Hz) and
# then strace counts one OSD's system calls for 4 s (strace -c).  Prints the job's
# figures, the CPU share of each process, the hottest functions of the
# OSDs and of fio (the client library is inside fio), and the system-call
# table.  The build should keep frame pointers and symbols: bench/run.sh
# profile uses build-profile (release, -g -fno-omit-frame-pointer).
#   bench/profile.sh BUILD_DIR RW BS QD [SECONDS] [FIO-ARGUMENTS...]
# e.g. bench/profile.sh build-profile randwrite 4k 32 10 --cache=writeback
set -eu
BUILD=$(cd "$1" && pwd)
RW=$2 BS=$3 QD=$4
shift 4
SECS=10
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	SECS=$1
	shift
fi
command -v perf >/dev/null || {
	echo "profile: perf is missing (apt-get install linux-perf)" >&2
	exit 2
}
command -v strace >/dev/null || {
	echo "profile: strace is missing (apt-get install strace)" >&2
	exit 2
}
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
ENGINE="$BUILD/fio/fio-mixsan.so"
[ -f "$ENGINE" ] || {
	echo "profile: no $ENGINE (configure with -Dfio_source, see docs/fio-engine.md)" >&2
	exit 2
}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-profile-XXXXXX")
# shellcheck disable=SC2034 # counted by lib.sh
fails=0
# shellcheck source=../tests/nbd/lib.sh
. "$HERE/../tests/nbd/lib.sh"
fpid=""
cleanup() {
	set +e
	[ -z "$fpid" ] || kill "$fpid" 2>/dev/null
	mx_cleanup
}
trap cleanup EXIT
trap 'exit 130' HUP INT PIPE TERM

mx_cluster_up
"$MIXSAN" pool create bench --size 3 --pg-num 64 --failure-domain osd >/dev/null
"$MIXSAN" volume create bench/vol --size 1G >/dev/null
FE="--ioengine=external:$ENGINE --mon=$MON --pool=bench --volume=vol"
# shellcheck disable=SC2086 # the engine's options, one a word
timeout 600 fio --name=prefill $FE --rw=write --bs=1M --size=256M --iodepth=4 \
	--output="$DIR/prefill.txt" >/dev/null
# shellcheck disable=SC2086
timeout $((SECS + 120)) fio --name=job $FE --rw="$RW" --bs="$BS" --iodepth="$QD" \
	--size=256M --time_based --runtime=$((SECS + 8)) "$@" --output="$DIR/job.txt" \
	>/dev/null &
fpid=$!
sleep 2
perf record -F 999 -g -a -o "$DIR/perf.data" -- sleep "$SECS" >/dev/null 2>&1
# Then, apart (tracing slows the OSD down), its system calls for 4 s.
timeout -s INT 4 strace -c -f -p "$(cat "$MIXSAN_DATA/run/osd.0.pid")" \
	-o "$DIR/strace.txt" 2>/dev/null || :
wait "$fpid" || fail "fio"
fpid=""
echo "== $RW $BS QD$QD $*"
grep -E "(read|write): IOPS|^ +lat \(" "$DIR/job.txt" || cat "$DIR/job.txt"
echo "== CPU share by process (all samples on the machine)"
perf report -i "$DIR/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
	grep '%' | head -8
for comm in mixsan-osd fio; do
	echo "== $comm: hottest functions (self)"
	perf report -i "$DIR/perf.data" --comm "$comm" --no-children --sort symbol --stdio \
		-g none 2>/dev/null | grep '%' | head -15
	echo "== $comm: hottest call paths (with callees)"
	perf report -i "$DIR/perf.data" --comm "$comm" --children --sort symbol --stdio \
		-g none 2>/dev/null | grep '%' | grep -v '\[k\]' | head -15
done
echo "== system calls of osd.0 (strace -c)"
head -20 "$DIR/strace.txt"
