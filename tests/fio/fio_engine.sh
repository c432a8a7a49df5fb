#!/bin/sh
# System test of the fio engine (fio/fio-mixsan.c, docs/fio-engine.md) on a
# development cluster (1 monitor, 3 OSDs, a pool of 3 replicas):
#  - random 4k writes at queue depth 16, verified (crc32c) as fio reads
#    them back, then again by a second fio that only reads and verifies
#    (a reader, opened without the writer's lock);
#  - a reader job beside a writer job on the same volume;
#  - write-back mode: writes with a sync every fourth and at the end,
#    verified;
#  - trims: a written range, discarded, reads as zeroes (through the CLI's
#    export);
#  - bad input: no such volume, no pool given, a bad cache mode, no
#    monitor: fio fails with the engine's clear words;
#  - an OSD killed (kill -9) while fio writes and verifies: no I/O error.
# Every step is bounded in time; the folder is kept on failure.
set -u
BUILD="${MIXSAN_BUILD_ROOT:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
ENGINE="$BUILD/fio/fio-mixsan.so"
# lib.sh preloads the sanitizer runtimes if the engine was built with them.
# shellcheck disable=SC2034 # read by lib.sh
NBD_PLUGIN_PATH="$ENGINE"
# shellcheck source-path=SCRIPTDIR source=../nbd/lib.sh
. "$HERE/../nbd/lib.sh"

mx_require fio cmp
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-fio-XXXXXX")
fails=0
trap mx_cleanup EXIT

# mxfio NAME ARGS...: fio with the engine on pool $POOL (none if empty);
# its report in $DIR/NAME.txt, its errors in $DIR/NAME.err.  The engine's
# options follow --ioengine, as fio parses them only once it is loaded.
POOL=vols
mxfio() {
	name=$1
	shift
	mx_preloaded timeout 300 fio --name="$name" --ioengine="external:$ENGINE" --mon="$MON" \
		${POOL:+--pool="$POOL"} --output="$DIR/$name.txt" "$@" >"$DIR/$name.err" 2>&1
}

# passed NAME DESCRIPTION: the fio run's status, with its error count.
passed() {
	if [ "$1" = 0 ] && grep -q "err= 0" "$DIR/$2.txt"; then
		echo "ok $3"
		grep -E "(read|write|trim): IOPS" "$DIR/$2.txt" | sed 's/^/   /'
	else
		fail "$3 (exit $1)"
		cat "$DIR/$2.txt" "$DIR/$2.err"
	fi
}

# refused NAME WORDS DESCRIPTION: the fio run failed, saying WORDS.
refused() {
	if [ "$1" != 0 ] && grep -q "$3" "$DIR/$2.err" "$DIR/$2.txt"; then
		echo "ok $4: $(grep -h "fio-mixsan:" "$DIR/$2.err" "$DIR/$2.txt" | head -1)"
	else
		fail "$4 (exit $1)"
		cat "$DIR/$2.txt" "$DIR/$2.err"
	fi
}

mx_cluster_up
"$MIXSAN" pool create vols --size 3 --pg-num 32 --failure-domain osd >/dev/null ||
	fail "pool create"
"$MIXSAN" volume create vols/disk --size 128M >/dev/null || fail "volume create"

mxfio w --volume=disk --rw=randwrite --bs=4k --iodepth=16 --size=32M \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0
passed $? w "random 4k writes at QD16, read back and verified"
mxfio v --volume=disk --rw=randwrite --bs=4k --iodepth=8 --size=32M \
	--verify=crc32c --verify_fatal=1 --verify_only --verify_state_save=0
passed $? v "a second fio reads and verifies them"

# A reader beside a writer: the reader takes no lock.
mxfio side-w --volume=disk --rw=randwrite --bs=16k --iodepth=4 --size=16M --offset=64M &
wpid=$!
mxfio side-r --volume=disk --rw=randread --bs=4k --iodepth=4 --size=32M --runtime=3 --time_based
passed $? side-r "a reader beside a writer"
wait $wpid
passed $? side-w "the writer beside it"

mxfio wb --volume=disk --cache=writeback --rw=randwrite --bs=64k --iodepth=8 --offset=32M \
	--size=32M --fsync=4 --end_fsync=1 --verify=crc32c --verify_fatal=1 --do_verify=1 \
	--verify_state_save=0
if passed $? wb "write-back mode, a sync every fourth write, verified"; then
	grep -q "sync (" "$DIR/wb.txt" || fail "the write-back job ran no sync"
fi

mxfio fill --volume=disk --rw=write --bs=1M --offset=96M --size=8M --buffer_pattern=0x5a
passed $? fill "8 MiB written"
"$MIXSAN" volume export vols/disk "$DIR/disk.img" >/dev/null 2>&1 || fail "volume export"
if cmp -s -n $((8 << 20)) -i $((96 << 20)):0 "$DIR/disk.img" /dev/zero; then
	fail "the written range reads as zeroes"
fi
mxfio trim --volume=disk --rw=trim --bs=1M --offset=96M --size=8M
passed $? trim "those 8 MiB trimmed"
"$MIXSAN" volume export vols/disk "$DIR/disk.img" >/dev/null 2>&1 || fail "volume export"
if cmp -s -n $((8 << 20)) -i $((96 << 20)):0 "$DIR/disk.img" /dev/zero; then
	echo "ok the trimmed range reads as zeroes"
else
	fail "the trimmed range does not read as zeroes"
fi
rm -f "$DIR/disk.img"

mxfio nov --volume=nope --rw=read --bs=4k --size=1M
refused $? nov "volume vols/nope: No such file" "no such volume"
mxfio bad --volume=disk --cache=sometimes --rw=read --bs=4k --size=1M
refused $? bad "cache=sometimes: not writethrough" "a bad cache mode"
POOL=""
mxfio nop --volume=disk --rw=read --bs=4k --size=1M
st=$?
POOL=vols
refused $st nop "pool= and volume= are required" "no pool given"
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MON_SAVED=$MON
MON="127.0.0.1:$dead"
mxfio nomon --volume=disk --rw=read --bs=4k --size=1M
refused $? nomon "connecting to 127.0.0.1:$dead" "no monitor answers"
MON=$MON_SAVED

# An OSD killed while fio writes and verifies.
mxfio kill --volume=disk --rw=randwrite --bs=16k --iodepth=8 --size=128M \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 &
fpid=$!
sleep 1
victim=$(cat "$MIXSAN_DATA"/run/osd.1.pid 2>/dev/null)
if [ -n "$victim" ] && kill -9 "$victim"; then
	echo "   killed osd.1 (pid $victim) during I/O"
else
	fail "no OSD to kill"
fi
kill -0 $fpid 2>/dev/null || fail "fio ended before the OSD was killed"
wait $fpid
passed $? kill "fio saw no I/O error with an OSD killed"

if [ "$fails" = 0 ]; then
	echo "fio_engine: all passed"
else
	echo "fio_engine: $fails failed"
fi
[ "$fails" = 0 ]
