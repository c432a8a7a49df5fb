#!/bin/bash
# System test of MixSAN volumes served over NBD by nbdkit-mixsan-plugin,
# on a development cluster (1 monitor, 3 OSDs, a pool of 3 replicas) in a
# temporary folder:
#  - the NBD protocol tests (nbd_protocol.sh: forbidden requests, libnbd
#    probes) against a volume, writable, read-only, TCP and unix socket;
#  - qemu-img converts a 1 GiB image of random data with holes into a
#    volume and back out: checksums equal, holes stay holes, `volume du`
#    counts only the written objects;
#  - mixsan volume import/export through files and pipes;
#  - fio with crc32c verification, random and sequential, four jobs over
#    four connections;
#  - the writer's lock: a second writable server on the volume is refused,
#    a read-only one is served beside it;
#  - an OSD killed (kill -9) while fio writes and verifies: no I/O error.
# Every step is bounded in time; the folder is kept on failure.
set -u
BUILD="${MIXSAN_BUILD_ROOT:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
PLUGIN="$BUILD/nbd/nbdkit-mixsan-plugin.so"
NBD_PLUGIN_PATH="$PLUGIN"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

mx_require nbdkit qemu-img fio
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-vol-XXXXXX")
fails=0
trap mx_cleanup EXIT

ok() { # ok DESCRIPTION COMMAND...: the command must succeed
	d="$1"
	shift
	if ! timeout 600 "$@" >"$DIR/out" 2>"$DIR/err"; then
		fail "$d (exit $?)"
		tail -n 20 "$DIR/out" "$DIR/err"
		return 1
	fi
	echo "ok $d"
}

# serve NAME ARGS...: nbdkit with the plugin on $DIR/NAME.sock.
serve() {
	name=$1
	shift
	rm -f "$DIR/$name.sock"
	nbd_serve "$name" -U "$DIR/$name.sock" "$@"
}

stop() {
	nbd_stop "$1"
}

uri() { # uri SERVER VOLUME
	echo "nbd+unix:///$2?socket=$DIR/$1.sock"
}

mx_cluster_up
ok "pool create" "$MIXSAN" pool create vols --size 3 --pg-num 64 --failure-domain osd

# --- The protocol tests, against a volume --------------------------------
ok "volume create proto" "$MIXSAN" volume create vols/proto --size 64M
ok "snapshot of proto" "$MIXSAN" volume snap create vols/proto@s1
echo "== nbd_protocol.sh against vols/proto (read-only: its snapshot s1)"
if NBD_PLUGIN="$PLUGIN" NBD_PLUGIN_ARGS="mon=$MON pool=vols volume=proto" \
	NBD_RO_PLUGIN_ARGS="mon=$MON pool=vols volume=proto snapshot=s1" \
	NBD_SIZE=67108864 NBD_MIN_BLOCK=512 timeout 600 sh "$HERE/nbd_protocol.sh" \
	>"$DIR/proto.out" 2>&1; then
	grep -E "passed|FAIL" "$DIR/proto.out"
	echo "ok nbd_protocol"
else
	cat "$DIR/proto.out"
	fail "nbd_protocol against a volume"
fi

# A snapshot export is read-only even without -r: writes get EPERM.
serve snap "$PLUGIN" "mon=$MON" pool=vols || exit 1
ok "a snapshot export refuses writes" "$BUILD/tests/nbd/nbd_probe" \
	"$(uri snap proto@s1)" --read-only --expect-size 67108864
stop snap

# The snapshot cache's parameters (docs/vdi-cache.md): bad values are
# refused when nbdkit starts, with the reason.
for bad in readahead=1 readahead=1G cache=lots; do
	if nbdkit_run --exit-with-parent -f --run true "$PLUGIN" "mon=$MON" pool=vols "$bad" \
		>"$DIR/bad-param.log" 2>&1; then
		fail "nbdkit started with $bad"
	else
		echo "ok $bad refused: $(grep -m1 error "$DIR/bad-param.log")"
	fi
done

# --- Cache modes (docs/cache-modes.md) -------------------------------------
# A writeback export passes the protocol tests (flush and FUA included);
# qemu-img writes 64 MiB through another writeback export and flushes at its
# end; that nbdkit is then killed (kill -9), and a read-only export reads
# back exactly what was written.
ok "volume create wb" "$MIXSAN" volume create vols/wb --size 64M
echo "== nbd_protocol.sh against a writeback export"
if NBD_PLUGIN="$PLUGIN" NBD_PLUGIN_ARGS="mon=$MON pool=vols volume=proto cache=writeback" \
	NBD_RO_PLUGIN_ARGS="mon=$MON pool=vols volume=proto snapshot=s1" \
	NBD_SIZE=67108864 NBD_MIN_BLOCK=512 timeout 600 sh "$HERE/nbd_protocol.sh" \
	>"$DIR/proto-wb.out" 2>&1; then
	grep -E "passed|FAIL" "$DIR/proto-wb.out"
	echo "ok nbd_protocol (writeback)"
else
	cat "$DIR/proto-wb.out"
	fail "nbd_protocol against a writeback export"
fi
head -c 64M /dev/urandom >"$DIR/wb.img"
serve wb "$PLUGIN" "mon=$MON" pool=vols cache=writeback || exit 1
ok "qemu-img convert into a writeback export" \
	qemu-img convert -n -O raw "$DIR/wb.img" "$(uri wb wb)"
kill -9 "$(cat "$DIR/wb.pid")"
serve wbro "$PLUGIN" "mon=$MON" pool=vols readonly=1 || exit 1
ok "qemu-img convert out of the volume" qemu-img convert -O raw "$(uri wbro wb)" "$DIR/wb-back.img"
if cmp -s "$DIR/wb.img" "$DIR/wb-back.img"; then
	echo "ok flushed writeback data survives its server's kill -9"
else
	fail "writeback data lost after a flush and kill -9 of nbdkit"
fi
stop wbro
for bad in cache=writeahead; do
	if nbdkit_run --exit-with-parent -f --run true "$PLUGIN" "mon=$MON" pool=vols "$bad" \
		>"$DIR/bad-param.log" 2>&1; then
		fail "nbdkit started with $bad"
	else
		echo "ok $bad refused: $(grep -m1 error "$DIR/bad-param.log")"
	fi
done

# --- qemu-img: 1 GiB of random data with holes, in and out ---------------
# Regions of random data (offset MiB, length MiB, some not object-aligned);
# everything else is a hole.
IMG="$DIR/src.img"
truncate -s 1G "$IMG"
objects=""
for r in "0 6" "37 9" "130 64" "511 2" "700 100" "1000 3" "1021 3"; do
	set -- $r
	head -c "$(($2 << 20))" /dev/urandom |
		dd of="$IMG" bs=1M seek="$1" conv=notrunc status=none
	o=$(($1 / 4))
	while [ $((o * 4)) -lt $(($1 + $2)) ]; do
		objects="$objects $o"
		o=$((o + 1))
	done
done
want_objs=$(echo "$objects" | tr ' ' '\n' | grep -v '^$' | sort -un | wc -l)
ok "volume create big" "$MIXSAN" volume create vols/big --size 1G
serve big "$PLUGIN" "mon=$MON" pool=vols || exit 1
t0=$(date +%s.%N)
ok "qemu-img convert into the volume" qemu-img convert -n -O raw "$IMG" "$(uri big big)"
t1=$(date +%s.%N)
ok "qemu-img convert out of the volume" qemu-img convert -O raw "$(uri big big)" "$DIR/back.img"
t2=$(date +%s.%N)
echo "   in: $(python3 -c "print(round($t1 - $t0, 1))") s, out: $(python3 -c "print(round($t2 - $t1, 1))") s"
if [ "$(sha256sum <"$IMG")" = "$(sha256sum <"$DIR/back.img")" ]; then
	echo "ok checksums equal"
else
	fail "the image read back differs"
fi
"$MIXSAN" volume du vols/big --json >"$DIR/out" 2>&1
used=$(python3 -c "import json; print(json.load(open('$DIR/out'))[0]['objects_used'])")
if [ "$used" = "$want_objs" ]; then
	echo "ok du: $used objects used, as written"
else
	fail "du: $used objects used, $want_objs written"
fi
# Holes stay holes on the way out: the copy allocates about the data.
alloc=$(du -k "$DIR/back.img" | cut -f1)
data_k=$(((6 + 9 + 64 + 2 + 100 + 3 + 3) * 1024))
if [ "$alloc" -le $((data_k + want_objs * 4096)) ]; then
	echo "ok holes stay holes: $alloc KiB allocated for $data_k KiB of data"
else
	fail "the copy allocates $alloc KiB for $data_k KiB of data"
fi
qemu-img map --output=json "$(uri big big)" >"$DIR/map.json" 2>&1
if python3 - "$DIR/map.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
data = sum(e["length"] for e in m if e["data"])
sys.exit(0 if data < 300 << 20 else 1)
EOF
then
	echo "ok block status reports the holes"
else
	fail "block status: $(head -c 300 "$DIR/map.json")"
fi
stop big

# --- import / export through files and pipes -----------------------------
head -c 5000000 /dev/urandom >"$DIR/small.bin"
ok "import from a pipe" sh -c "cat '$DIR/small.bin' | '$MIXSAN' volume import - vols/piped"
ok "export to a pipe" sh -c "'$MIXSAN' volume export vols/piped - > '$DIR/piped.out'"
cmp -s "$DIR/small.bin" "$DIR/piped.out" && echo "ok pipe round trip" ||
	fail "pipe round trip differs"
ok "import a sparse file" "$MIXSAN" volume import "$IMG" vols/imported
ok "export to a file" "$MIXSAN" volume export vols/imported "$DIR/exported.img"
cmp -s "$IMG" "$DIR/exported.img" && echo "ok file round trip" ||
	fail "file round trip differs"
"$MIXSAN" volume du vols/imported --json >"$DIR/out" 2>&1
used=$(python3 -c "import json; print(json.load(open('$DIR/out'))[0]['objects_used'])")
[ "$used" = "$want_objs" ] && echo "ok import skips holes" ||
	fail "import stored $used objects, $want_objs hold data"
ok "volume rm" "$MIXSAN" volume rm vols/imported
ok "volume rm" "$MIXSAN" volume rm vols/piped

# --- the volume commands: snapshots, rollback, clones, resize -----------------
printf 'first' >"$DIR/one.txt"
printf 'second' >"$DIR/two.txt"
ok "volume create cmd" "$MIXSAN" volume create vols/cmd --size 8M --object-size 1M
ok "import a file over it" sh -c "'$MIXSAN' volume rm vols/cmd && '$MIXSAN' volume import '$DIR/one.txt' vols/cmd"
ok "snap create" "$MIXSAN" volume snap create vols/cmd@one
ok "volume create loc" "$MIXSAN" volume create vols/loc --size 8M --object-size 1M
ok "volume locate" "$MIXSAN" volume locate vols/loc
grep -q "offset 0: object vol\..*\.0000000000000000 (not allocated), pg .*, primary osd\.[0-9]" "$DIR/out" &&
	echo "ok volume locate names the primary" || fail "volume locate: $(cat "$DIR/out")"
ok "volume locate --json" "$MIXSAN" volume locate vols/loc 1M --json
python3 -c "import json,sys; j=json.load(open('$DIR/out')); sys.exit(0 if j['offset']==1048576 and j['object'].endswith('0000000000000001') and j['primary']==j['acting'][0] and len(j['acting'])==3 else 1)" &&
	echo "ok volume locate --json" || fail "volume locate --json: $(cat "$DIR/out")"
if "$MIXSAN" volume locate vols/loc 64M >"$DIR/out" 2>&1; then
	fail "volume locate past the end succeeded"
else
	grep -q "past the end" "$DIR/out" && echo "ok volume locate past the end" ||
		fail "volume locate past the end: $(cat "$DIR/out")"
fi
ok "resize (grow)" "$MIXSAN" volume resize vols/cmd --size 2M
if "$MIXSAN" volume resize vols/cmd --size 1K >"$DIR/out" 2>&1; then
	fail "a shrink without --yes-i-really-mean-it was done"
else
	grep -q "yes-i-really-mean-it" "$DIR/out" && echo "ok a shrink needs confirmation" ||
		fail "shrink refusal: $(cat "$DIR/out")"
fi
ok "snap ls" "$MIXSAN" volume snap ls vols/cmd --json
python3 -c "import json,sys; j=json.load(open('$DIR/out')); sys.exit(0 if [s['name'] for s in j]==['one'] and j[0]['size']==5 else 1)" ||
	fail "snap ls: $(cat "$DIR/out")"
ok "export the snapshot" "$MIXSAN" volume export vols/cmd@one "$DIR/one.out"
cmp -s "$DIR/one.txt" "$DIR/one.out" && echo "ok the snapshot's content" || fail "snapshot content"
if "$MIXSAN" volume clone vols/cmd@one vols/cmdclone >"$DIR/out" 2>&1; then
	fail "a clone of an unprotected snapshot was made"
else
	grep -q "not protected" "$DIR/out" && echo "ok a clone needs a protected snapshot" ||
		fail "clone refusal: $(cat "$DIR/out")"
fi
ok "snap protect" "$MIXSAN" volume snap protect vols/cmd@one
ok "volume clone" "$MIXSAN" volume clone vols/cmd@one vols/cmdclone
ok "volume info of a clone" "$MIXSAN" volume info vols/cmdclone
grep -q "parent:" "$DIR/out" && echo "ok info names the parent" || fail "info: $(cat "$DIR/out")"
if "$MIXSAN" volume snap unprotect vols/cmd@one >"$DIR/out" 2>&1; then
	fail "a snapshot with clones was unprotected"
else
	grep -q "has clones" "$DIR/out" && echo "ok no unprotect while clones exist" ||
		fail "unprotect refusal: $(cat "$DIR/out")"
fi
ok "volume flatten" "$MIXSAN" volume flatten vols/cmdclone
ok "export the flattened clone" "$MIXSAN" volume export vols/cmdclone "$DIR/clone.out"
cmp -s "$DIR/one.txt" "$DIR/clone.out" && echo "ok the flattened clone's content" ||
	fail "flattened clone content"
ok "snap unprotect" "$MIXSAN" volume snap unprotect vols/cmd@one
ok "overwrite the head" sh -c "'$MIXSAN' volume import '$DIR/two.txt' vols/two && '$MIXSAN' volume export vols/two - > '$DIR/two.out'"
ok "snap rollback" "$MIXSAN" volume snap rollback vols/cmd@one
ok "export after rollback" "$MIXSAN" volume export vols/cmd "$DIR/rb.out"
cmp -s "$DIR/one.txt" "$DIR/rb.out" && echo "ok rollback restores content and size" ||
	fail "rollback: $(od -c "$DIR/rb.out" | head -2)"
if "$MIXSAN" volume rm vols/cmd >"$DIR/out" 2>&1; then
	fail "a volume with snapshots was removed"
else
	grep -q "has snapshots" "$DIR/out" && echo "ok no removal with snapshots" ||
		fail "rm refusal: $(cat "$DIR/out")"
fi
ok "snap rm" "$MIXSAN" volume snap rm vols/cmd@one
ok "volume rm" "$MIXSAN" volume rm vols/cmd
ok "volume rm" "$MIXSAN" volume rm vols/cmdclone
ok "volume rm" "$MIXSAN" volume rm vols/two

# --- fio with verification over several connections ----------------------
ok "volume create fio" "$MIXSAN" volume create vols/fio --size 512M
serve fio "$PLUGIN" "mon=$MON" pool=vols volume=fio || exit 1
for rw in randwrite write; do
	ok "fio $rw verify crc32c, 4 jobs, 4 connections" \
		fio --name=v --ioengine=nbd --uri="$(uri fio fio)" --rw=$rw --bs=4k,64k \
		--bsrange=4k-256k --numjobs=4 --size=24M --offset_increment=128M \
		--iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--group_reporting --output="$DIR/fio-$rw.txt"
	grep -E "IOPS|err=" "$DIR/fio-$rw.txt" | head -4 | sed 's/^/   /'
done

# --- the writer's lock ----------------------------------------------------
# The fio server holds vols/fio's lock while a client is connected: a slow
# writer keeps one connected meanwhile.
fio --name=hold --ioengine=nbd --uri="$(uri fio fio)" --rw=randwrite --bs=4k --size=4M \
	--time_based --runtime=15 --rate_iops=20 --output="$DIR/fio-hold.txt" >/dev/null 2>&1 &
hold=$!
sleep 2
serve second "$PLUGIN" "mon=$MON" pool=vols volume=fio || exit 1
if qemu-img info "$(uri second fio)" >"$DIR/out" 2>&1; then
	fail "a second writer was served"
else
	grep -q "open for writing elsewhere" "$DIR/second.log" &&
		echo "ok a second writer is refused: $(grep -o 'volume fio is open[^;]*' "$DIR/second.log" | head -1)" ||
		fail "second writer: no clear error in the log"
fi
stop second
serve reader "$PLUGIN" "mon=$MON" pool=vols volume=fio readonly=1 || exit 1
ok "a reader beside the writer" qemu-img info "$(uri reader fio)"
stop reader
wait $hold || fail "the slow writer failed"

# --- kill -9 an OSD while fio writes and verifies -------------------------
fio --name=k --ioengine=nbd --uri="$(uri fio fio)" --rw=randwrite --bs=16k \
	--numjobs=2 --size=64M --offset_increment=256M --iodepth=4 \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --time_based=0 \
	--output="$DIR/fio-kill.txt" >/dev/null 2>&1 &
fpid=$!
sleep 3
victim=$(cat "$MIXSAN_DATA"/run/osd.1.pid 2>/dev/null)
if [ -n "$victim" ] && kill -9 "$victim"; then
	echo "   killed osd.1 (pid $victim) during I/O"
else
	fail "no OSD to kill"
fi
if timeout 600 tail --pid=$fpid -f /dev/null && wait $fpid; then
	echo "ok fio saw no I/O error with an OSD killed"
	grep -E "write:|err=" "$DIR/fio-kill.txt" | sed 's/^/   /'
else
	fail "fio failed with an OSD killed"
	cat "$DIR/fio-kill.txt"
fi
stop fio

if [ "$fails" = 0 ]; then
	echo "volume_export: all passed"
else
	echo "volume_export: $fails failed"
fi
[ "$fails" = 0 ]
