#!/bin/sh
# Cache tiering on a mixed workload (docs/performance.md, "Cache tiering on
# a mixed workload"): tierbench (tierbench.c) on a cluster whose three hdd
# OSDs sit on emulated 7,200 rpm disks and whose three ssd OSDs sit on the
# local disk.  Runs as root; everything set up here is torn down on exit,
# on failure too.
#
#   bench/tierbench.sh BUILD [SECONDS_PER_JOB]     (default 20)
#
# The slow disks, one per hdd OSD (a disk per OSD daemon, as in production):
# a sparse image file on the local disk, made ext4 there, served by nbdkit
# on a unix socket through the delay filter (every read and write request
# waits TIERBENCH_DELAY_MS, default 6: a seek and half a turn of a 7,200 rpm
# disk, whose random I/O takes 4 to 8 ms) and the noparallel filter (one
# request at a time, as one spindle serves them), shown as a file by
# nbdfuse, attached to a loop device with direct I/O (so the loop device
# does not cache what the disk holds) and mounted.  The data folders of the
# hdd OSDs are on those mounts; the hdd OSDs run in a memory cgroup of
# TIERBENCH_HDD_MEM_MIB (default 128) so that their page cache stays small,
# as on a disk far larger than RAM.  Before the benchmark, tierbench --probe
# prints the cost of one durable 4 KiB write and one direct 4 KiB read on a
# slow disk and on the local disk.
#
# Environment: TIERBENCH_ARGS, more options for tierbench (--objects N,
# --obj-kib K, --qd Q, --workloads hot,uniform,scan, --configs
# none,writeback,readonly); TIERBENCH_IMG_GIB, the size of each image
# (default 4).
set -u
BUILD=$(cd "$1" && pwd)
SECS=${2:-20}
case $SECS in
'' | *[!0-9]*) echo "usage: tierbench.sh BUILD [SECONDS_PER_JOB]" >&2 && exit 2 ;;
esac
DELAY=${TIERBENCH_DELAY_MS:-6}
MEM_MIB=${TIERBENCH_HDD_MEM_MIB:-128}
IMG_GIB=${TIERBENCH_IMG_GIB:-4}
BENCH="$BUILD/bench/tierbench"
CGROOT=/sys/fs/cgroup/memory

if [ "$(id -u)" != 0 ]; then
	echo "tierbench.sh: runs as root (loop devices, mounts, cgroups)" >&2
	exit 77
fi
for t in nbdkit nbdfuse losetup mkfs.ext4 mount umount timeout; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "tierbench.sh: $t is not installed" >&2
		exit 77
	fi
done
if [ ! -d "$CGROOT" ]; then
	echo "tierbench.sh: no memory cgroup controller at $CGROOT" >&2
	exit 77
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-tierbench-XXXXXX")
CG="$CGROOT/mixsan-tierbench-$$"
LOOPS=""

# cgroup_kill CG: every process in it (all started here), then wait (an
# OSD killed amid its writes to a slow disk takes seconds to go).
# shellcheck disable=SC2317,SC2013 # called by the exit trap; pids are words
cgroup_kill() {
	[ -f "$1/cgroup.procs" ] || return 0
	for sig in TERM KILL; do
		for ck_pid in $(cat "$1/cgroup.procs"); do
			kill -s "$sig" "$ck_pid" 2>/dev/null
		done
		ck_n=0
		while [ -s "$1/cgroup.procs" ] && [ "$ck_n" -lt 300 ]; do
			sleep 0.1
			ck_n=$((ck_n + 1))
		done
	done
}

# umount_retry DIR: unmount it if mounted, trying for up to 30 s (a
# process gone a moment ago may still hold it).
# shellcheck disable=SC2317 # called by the exit trap
umount_retry() {
	um_n=0
	while mountpoint -q "$1"; do
		umount "$1" 2>/dev/null && return 0
		[ "$um_n" -lt 300 ] || {
			echo "tierbench.sh: cannot unmount $1" >&2
			return 1
		}
		sleep 0.1
		um_n=$((um_n + 1))
	done
}

# stop_pid PIDFILE: TERM to that process until it is gone (nbdkit may
# outlive the first one while its client goes), KILL after 10 s.
# shellcheck disable=SC2317 # called by the exit trap
stop_pid() {
	[ -s "$1" ] || return 0
	sp_pid=$(cat "$1")
	sp_n=0
	while kill -0 "$sp_pid" 2>/dev/null; do
		if [ "$sp_n" -lt 100 ]; then
			kill "$sp_pid" 2>/dev/null
		else
			kill -s KILL "$sp_pid" 2>/dev/null
		fi
		sleep 0.1
		sp_n=$((sp_n + 1))
	done
}

# shellcheck disable=SC2317 # the exit trap
cleanup() {
	trap - EXIT INT TERM
	cgroup_kill "$CG/hdd"
	cgroup_kill "$CG"
	for i in 0 1 2; do
		umount_retry "$DIR/hdd/osd.$i"
	done
	for l in $LOOPS; do
		losetup -d "$l"
	done
	for i in 0 1 2; do
		umount_retry "$DIR/fuse.$i"
		stop_pid "$DIR/fuse.$i.pid"
		stop_pid "$DIR/nbdkit.$i.pid"
	done
	wait 2>/dev/null
	[ -d "$CG/hdd" ] && rmdir "$CG/hdd"
	[ -d "$CG" ] && rmdir "$CG"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# slow_disk I: image I served with the delay, mounted at $DIR/hdd/osd.I.
slow_disk() {
	img="$DIR/img.$1"
	truncate -s "${IMG_GIB}G" "$img" &&
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" || return 1
	nbdkit -U "$DIR/nbd.$1.sock" -P "$DIR/nbdkit.$1.pid" \
		--filter=noparallel --filter=delay file "$img" serialize=all-requests \
		delay-read="${DELAY}ms" delay-write="${DELAY}ms" || return 1
	mkdir -p "$DIR/fuse.$1" "$DIR/hdd/osd.$1"
	rm -f "$DIR/fuse.$1.pid"
	nbdfuse -P "$DIR/fuse.$1.pid" "$DIR/fuse.$1/disk" --unix "$DIR/nbd.$1.sock" &
	i=0
	while [ ! -s "$DIR/fuse.$1.pid" ]; do
		[ $i -lt 100 ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
	loop=$(losetup --direct-io=on -f --show "$DIR/fuse.$1/disk") || return 1
	LOOPS="$LOOPS $loop"
	mount "$loop" "$DIR/hdd/osd.$1"
}

for i in 0 1 2; do
	if ! slow_disk $i; then
		echo "tierbench.sh: cannot set up slow disk $i" >&2
		exit 1
	fi
done
echo "Slow disks: 3 images of $IMG_GIB GiB (one per hdd OSD), nbdkit delay filter" \
	"delay-read=${DELAY}ms delay-write=${DELAY}ms, one request at a time, nbdfuse," \
	"loop device (direct I/O), ext4"
"$BENCH" --probe "$DIR/hdd/osd.0" || exit 1
"$BENCH" --probe "$DIR" || exit 1

mkdir "$CG" "$CG/hdd" || exit 1
echo $((MEM_MIB * 1048576)) >"$CG/hdd/memory.limit_in_bytes" || exit 1
echo "hdd OSDs' memory cgroup: $MEM_MIB MiB"
echo "load before: $(uptime)"
st=0
# In the background, so that a signal to this script runs its trap at once.
# shellcheck disable=SC2086 # TIERBENCH_ARGS are words
TMPDIR="$DIR" MIXSAN_BUILD_ROOT="$BUILD" sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' \
	sh "$CG" timeout -k 10 $((900 + 12 * SECS)) "$BENCH" "$SECS" --hdd-dir "$DIR/hdd" \
	--hdd-cgroup "$CG/hdd" ${TIERBENCH_ARGS:-} &
wait $! || st=$?
echo "load after: $(uptime)"
echo "hdd OSDs' memory cgroup: peak $(($(cat "$CG/hdd/memory.max_usage_in_bytes") / 1048576)) MiB," \
	"limit hit $(cat "$CG/hdd/memory.failcnt") times"
[ "$st" = 0 ] || echo "tierbench.sh: tierbench failed (status $st)" >&2
exit "$st"
