#!/bin/sh
# Volume I/O through the NBD export, and, in the same run, the same jobs on
# Ceph and on the raw disk.  MixSAN: a development cluster (1 monitor,
# 3 OSDs on the local disk, a pool of 3 replicas, failure domain osd), a
# 1 GiB volume of which 256 MiB are written first, nbdkit-mixsan-plugin on
# a unix socket, and fio's nbd engine running six jobs, each for SECONDS
# after a 2 s ramp, on those 256 MiB.  In the durable class (the default)
# every write is durable on all three replicas before it is acknowledged;
# if the plugin takes cache=writeback, the jobs run again in the write-back
# class, with fio flushing at the end of each job (--end_fsync=1).
#   bench/nbdbench.sh BUILD_DIR [SECONDS] [--ceph] [--raw] [--engine] [--xfs]
# --xfs: MixSAN's cluster folder on an XFS file system with reflinks, made
# for the run on a loop device (direct I/O) over a file in the run's
# folder, where the OSDs apply large writes by cloning the log's blocks
# (docs/object-store.md, "Large writes written once"); root.
# --engine: the same jobs, in both classes, through MixSAN's fio engine
# (BUILD_DIR/fio/fio-mixsan.so: libmixsan inside fio, no export), after a
# verified pass of random writes through it.
# --ceph: Ceph 16.2 from Debian's packages (installed if missing) set up by
# hand with the same layout in the same folder (bench/cephlib.sh), an
# image of 1 GiB prefilled alike, and the jobs through fio's rbd engine
# (librbd, rbd_cache=false) and through qemu-nbd --cache=none on a unix
# socket with fio's nbd engine.
# --raw: the jobs on a local file with O_DIRECT, one durable 4k write's
# cost (write + fdatasync at QD1), 4k reads from an NBD export of memory
# (nbdkit's memory plugin: the NBD hop alone), and a loopback TCP round
# trip (bench/rtt).
# Prints one line per job as it ends (IOPS, MiB/s, mean and p99 latency),
# then every system's table in Markdown: those figures, the CPU seconds per
# 1,000 I/Os of the OSDs, the monitors (Ceph: and the mgr), the export
# process and fio, the peak RSS of each daemon, and the ratios of ours to
# the others and to Vitastor's published figures (bench/fioreport.py).
# The systems run one after the other, each stopped before the next starts.
set -eu
BUILD=$(cd "$1" && pwd)
shift
SECS=25
CEPH=0
RAW=0
ENGINE=0
XFS=0
for a in "$@"; do
	case $a in
	--xfs) XFS=1 ;;
	--ceph) CEPH=1 ;;
	--raw) RAW=1 ;;
	--engine) ENGINE=1 ;;
	"" | *[!0-9]*)
		echo "usage: bench/nbdbench.sh BUILD_DIR [SECONDS] [--ceph] [--raw] [--engine] [--xfs]" >&2
		exit 2
		;;
	*) SECS=$a ;;
	esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
PLUGIN="$BUILD/nbd/nbdkit-mixsan-plugin.so"
ENGINE_SO="$BUILD/fio/fio-mixsan.so"
REPORT="$HERE/fioreport.py"
HZ=$(getconf CLK_TCK)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-nbdbench-XXXXXX")
fails=0
# shellcheck source=../tests/nbd/lib.sh
. "$HERE/../tests/nbd/lib.sh"
# shellcheck source=cephlib.sh
. "$HERE/cephlib.sh"
qnbd_pid=""
fpid=""
xfs_loop=""
cleanup() {
	set +e # stop everything, whatever is already gone
	[ -z "$fpid" ] || kill "$fpid" 2>/dev/null
	[ -z "$qnbd_pid" ] || kill "$qnbd_pid" 2>/dev/null
	ceph_down
	if [ -n "$xfs_loop" ]; then
		nbd_stop_all
		"$MIXSAN" cluster down >/dev/null 2>&1
		umount "$DIR/cluster"
		losetup -d "$xfs_loop"
	fi
	mx_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ "$CEPH" = 0 ] || ceph_install
if [ "$ENGINE" = 1 ] && [ ! -f "$ENGINE_SO" ]; then
	echo "nbdbench: no $ENGINE_SO (bench/run.sh nbd --engine builds it)" >&2
	exit 2
fi
: >"$DIR/results.tsv"
: >"$DIR/rss.tsv"
njobs=0

# The daemon groups whose CPU time each job counts (pids, a word each).
OSD_PIDS=""
MON_PIDS=""
EXPORT_PIDS=""

# ticks PIDS...: their utime + stime, in clock ticks ("" for none).
ticks() {
	[ $# -gt 0 ] || return 0
	for p in "$@"; do
		sed 's/.*) //' "/proc/$p/stat"
	done | awk '{ t += $12 + $13 } END { print t }'
}

group_ticks() {
	# shellcheck disable=SC2086 # one pid a word
	printf '%s,%s,%s' "$(ticks $OSD_PIDS)" "$(ticks $MON_PIDS)" "$(ticks $EXPORT_PIDS)"
}

# peak_rss SYSTEM GROUP PIDS...: their VmHWM (KiB) into rss.tsv.
peak_rss() {
	s=$1 g=$2
	shift 2
	[ $# -gt 0 ] || return 0
	printf '%s\t%s\t%s\n' "$s" "$g" "$(for p in "$@"; do
		awk '/VmHWM/ { printf "%s ", $2 }' "/proc/$p/status"
	done)" >>"$DIR/rss.tsv"
}

# job SYSTEM NAME RW BS QD FIO-ARGUMENTS...: one job for SECS after a 2 s
# ramp; the groups' CPU time is read at the end of the ramp and at the end.
job() {
	sys=$1 name=$2 rw=$3 bs=$4 qd=$5
	shift 5
	njobs=$((njobs + 1))
	out="$DIR/$sys.$njobs.json"
	timeout $((SECS + 120)) fio --name="$name" --rw="$rw" --bs="$bs" --iodepth="$qd" \
		--size=256M --time_based --runtime="$SECS" --ramp_time=2 --lat_percentiles=1 \
		--output="$out" --output-format=json "$@" >/dev/null &
	fpid=$!
	sleep 2
	c0=$(group_ticks)
	if ! wait "$fpid"; then
		fpid=""
		fail "fio: $sys $name"
		cat "$out" 2>/dev/null || :
		return 0
	fi
	fpid=""
	c1=$(group_ticks)
	printf '%s\t%s\t%s\t%s\t%s\n' "$sys" "$name" "$out" "$c0" "$c1" >>"$DIR/results.tsv"
	python3 "$REPORT" line "$out" "$name"
}

# six SYSTEM FIO-ARGUMENTS...: the six jobs.
six() {
	s=$1
	shift
	echo "== $s: $(uptime)"
	printf '%-28s %10s %10s %10s %10s\n' "job" "IOPS" "MiB/s" "mean ms" "p99 ms"
	job "$s" "4k randwrite QD1" randwrite 4k 1 "$@"
	job "$s" "4k randread QD1" randread 4k 1 "$@"
	job "$s" "4k randwrite QD32" randwrite 4k 32 "$@"
	job "$s" "4k randread QD32" randread 4k 32 "$@"
	job "$s" "1M write QD4" write 1M 4 "$@"
	job "$s" "1M read QD4" read 1M 4 "$@"
}

prefill() {
	timeout 600 fio --name=prefill --rw=write --bs=1M --size=256M --iodepth=4 \
		--output="$DIR/prefill.json" --output-format=json "$@" >/dev/null
}

# MixSAN
if [ "$XFS" = 1 ]; then
	command -v mkfs.xfs >/dev/null ||
		env DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfsprogs >/dev/null
	truncate -s 16G "$DIR/xfs.img"
	mkfs.xfs -q -m reflink=1 "$DIR/xfs.img"
	xfs_loop=$(losetup -f --show --direct-io=on "$DIR/xfs.img")
	mkdir "$DIR/cluster"
	mount "$xfs_loop" "$DIR/cluster"
fi
mx_cluster_up
"$MIXSAN" pool create bench --size 3 --pg-num 64 --failure-domain osd >/dev/null
"$MIXSAN" volume create bench/vol --size 1G >/dev/null
nbd_serve nbd -U "$DIR/nbd.sock" "$PLUGIN" "mon=$MON" pool=bench volume=vol
URI="nbd+unix:///?socket=$DIR/nbd.sock"
prefill --ioengine=nbd --uri="$URI"
OSD_PIDS=$(cat "$MIXSAN_DATA"/run/osd.*.pid)
MON_PIDS=$(cat "$MIXSAN_DATA"/run/mon*.pid | sort -u)
EXPORT_PIDS=$(cat "$DIR/nbd.pid")
six mixsan --ioengine=nbd --uri="$URI"
nbd_stop nbd
# The write-back class, if this tree's plugin has it.
if nbdkit_run -U - "$PLUGIN" "mon=$MON" pool=bench volume=vol cache=writeback \
	--run true >"$DIR/wb-probe.log" 2>&1; then
	nbd_serve nbdwb -U "$DIR/nbdwb.sock" "$PLUGIN" "mon=$MON" pool=bench volume=vol \
		cache=writeback
	EXPORT_PIDS=$(cat "$DIR/nbdwb.pid")
	six mixsan-wb --ioengine=nbd --uri="nbd+unix:///?socket=$DIR/nbdwb.sock" --end_fsync=1
	# shellcheck disable=SC2086 # one pid a word
	peak_rss mixsan-wb export $EXPORT_PIDS
	nbd_stop nbdwb
else
	echo "note: the plugin does not take cache=writeback here: write-back class skipped"
fi
# Through the fio engine: the client library inside fio, no export.
if [ "$ENGINE" = 1 ]; then
	EXPORT_PIDS=""
	FE="--ioengine=external:$ENGINE_SO --mon=$MON --pool=bench --volume=vol"
	# shellcheck disable=SC2086 # the engine's options, one a word
	if timeout 300 fio --name=verify $FE --rw=randwrite --bs=4k --iodepth=16 --size=64M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--output="$DIR/engine-verify.txt" >/dev/null 2>&1; then
		echo "== the engine's random writes read back verified (64 MiB, crc32c)"
	else
		fail "fio engine: verified writes"
		cat "$DIR/engine-verify.txt"
	fi
	# shellcheck disable=SC2086
	six mixsan-fio $FE
	# shellcheck disable=SC2086
	six mixsan-fio-wb $FE --cache=writeback --end_fsync=1
fi
# shellcheck disable=SC2086
peak_rss mixsan OSDs $OSD_PIDS
# shellcheck disable=SC2086
peak_rss mixsan mon $MON_PIDS
"$MIXSAN" cluster down >/dev/null 2>&1

# Ceph
if [ "$CEPH" = 1 ]; then
	echo "== setting up Ceph ($(date -u +%T))"
	ceph_up "$DIR/ceph"
	echo "== Ceph up, every PG active+clean ($(date -u +%T))"
	OSD_PIDS=$CEPH_OSD_PIDS
	MON_PIDS=$CEPH_MON_PIDS
	EXPORT_PIDS=""
	RBD="--ioengine=rbd --clientname=admin --pool=bench --rbdname=vol"
	export CEPH_CONF
	# shellcheck disable=SC2086 # the engine's options, one a word
	prefill $RBD
	# shellcheck disable=SC2086
	six ceph-rbd $RBD
	qemu-nbd -f raw --cache=none -t -k "$DIR/qnbd.sock" "rbd:bench/vol:conf=$CEPH_CONF" \
		>"$DIR/qemu-nbd.log" 2>&1 &
	qnbd_pid=$!
	i=0
	while [ ! -S "$DIR/qnbd.sock" ]; do
		if [ $i -ge 300 ] || ! kill -0 "$qnbd_pid" 2>/dev/null; then
			fail "qemu-nbd did not start within 30 s"
			cat "$DIR/qemu-nbd.log"
			exit 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	EXPORT_PIDS=$qnbd_pid
	six ceph-nbd --ioengine=nbd --uri="nbd+unix:///?socket=$DIR/qnbd.sock"
	peak_rss ceph-nbd export "$qnbd_pid"
	kill "$qnbd_pid" 2>/dev/null || :
	wait "$qnbd_pid" 2>/dev/null || :
	qnbd_pid=""
	# shellcheck disable=SC2086
	peak_rss ceph OSDs $CEPH_OSD_PIDS
	# shellcheck disable=SC2086
	peak_rss ceph "mon and mgr" $CEPH_MON_PIDS
	ceph_down
fi

# The raw disk
if [ "$RAW" = 1 ]; then
	OSD_PIDS=""
	MON_PIDS=""
	EXPORT_PIDS=""
	RAWF="--ioengine=libaio --direct=1 --filename=$DIR/raw.img"
	# shellcheck disable=SC2086
	prefill $RAWF
	# shellcheck disable=SC2086
	six raw $RAWF
	job raw "4k randwrite QD1 fdatasync" randwrite 4k 1 --ioengine=psync --direct=1 \
		--fdatasync=1 --filename="$DIR/raw.img"
	rm -f "$DIR/raw.img"
	# The NBD hop alone: nbdkit's memory plugin through fio's nbd engine,
	# 4k reads (what an export adds to the engine's latency, at least).
	nbd_serve nbdmem -U "$DIR/nbdmem.sock" memory 1G
	job raw "4k randread QD1 NBD memory" randread 4k 1 --ioengine=nbd \
		--uri="nbd+unix:///?socket=$DIR/nbdmem.sock"
	job raw "4k randread QD32 NBD memory" randread 4k 32 --ioengine=nbd \
		--uri="nbd+unix:///?socket=$DIR/nbdmem.sock"
	nbd_stop nbdmem
	# The floor under a replicated write: two such round trips (client
	# to primary, primary to replica) besides the flush.
	"$BUILD/bench/rtt" >"$DIR/rtt.txt" || fail "rtt"
fi

echo "== done: $(uptime)"
python3 "$REPORT" report "$DIR/results.tsv" "$DIR/rss.tsv" "$HZ"
[ ! -s "$DIR/rtt.txt" ] || { echo; cat "$DIR/rtt.txt"; }
[ "$fails" = 0 ]
