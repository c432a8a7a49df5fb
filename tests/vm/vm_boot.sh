#!/bin/sh
# System test: a Linux guest boots from a MixSAN volume.  On a development
# cluster (1 monitor, 3 OSDs, a pool of 3 replicas) in a temporary folder:
#  1. the guest's ext4 root image (mkguest.sh) is imported into a volume;
#  2. QEMU (software emulation) boots Debian's kernel with that volume as
#     its root disk over NBD (nbdkit-mixsan-plugin on a unix socket); the
#     guest writes a marker file and powers off;
#  3. the volume is exported to a file and the marker read back from it;
#  4. a snapshot of the volume is protected and five linked clones of it
#     boot, each writing its own marker: each clone then holds its own, and
#     the snapshot still the first;
#  5. the guest boots again from the volume, reads the first marker, writes
#     and reads back 16 MiB with its page cache dropped, and an OSD is
#     killed (kill -9) while it does: the boot must succeed with no I/O
#     error on the console; the clones and the snapshot are unchanged.
# Bounded: every boot has a timeout; the folder is kept on failure.
set -u
BUILD="${MIXSAN_BUILD_ROOT:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
PLUGIN="$BUILD/nbd/nbdkit-mixsan-plugin.so"
NBD_PLUGIN_PATH="$PLUGIN"
# shellcheck source=../nbd/lib.sh
. "$HERE/../nbd/lib.sh"

mx_require qemu-system-x86_64 nbdkit debugfs mke2fs cpio
if ! ls /boot/vmlinuz-* >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
	echo "no kernel in /boot or no static busybox: skipped"
	exit 77
fi
[ -f "$PLUGIN" ] || {
	echo "the nbdkit plugin was not built: skipped"
	exit 77
}

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-vm-XXXXXX")
fails=0
trap mx_cleanup EXIT

# serve: nbdkit with the plugin on $DIR/nbd.sock (the export name is the
# volume's name).
serve() {
	rm -f "$DIR/nbd.sock"
	nbd_serve nbd -U "$DIR/nbd.sock" "$PLUGIN" "mon=$MON" pool=vols || exit 1
}

unserve() {
	nbd_stop nbd
}

# console_clean MARKER: no I/O error in that boot's console.
console_clean() {
	if grep -E "I/O error|EXT4-fs error|Buffer I/O|blk_update_request" \
		"$DIR/guest/console-$1.log"; then
		fail "the guest saw I/O errors (boot $1)"
	fi
}

mx_cluster_up
"$MIXSAN" pool create vols --size 3 --pg-num 32 --failure-domain osd >/dev/null ||
	fail "pool create"

sh "$HERE/mkguest.sh" "$DIR/guest" 64 >"$DIR/mkguest.log" 2>&1 || {
	fail "mkguest.sh"
	cat "$DIR/mkguest.log"
	exit 1
}
"$MIXSAN" volume import "$DIR/guest/root.img" vols/root >/dev/null 2>&1 ||
	fail "volume import"
"$MIXSAN" volume du vols/root | sed 's/^/   /'

# 1. Boot from the volume; the guest writes a marker.
m1="first-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
serve
t0=$(date +%s)
if sh "$HERE/boot.sh" "$DIR/guest" "nbd+unix:///root?socket=$DIR/nbd.sock" "$m1" \
	>"$DIR/boot1.out" 2>&1; then
	echo "ok the guest booted from the volume in $(($(date +%s) - t0)) s and wrote $m1"
else
	fail "boot 1"
	tail -n 30 "$DIR/boot1.out"
fi
console_clean "$m1"
unserve

# 2. The marker, read back from the volume after shutdown.
"$MIXSAN" volume export vols/root "$DIR/after.img" >/dev/null 2>&1 || fail "volume export"
got=$(sh "$HERE/readfile.sh" "$DIR/after.img" /marker.txt 2>&1)
if [ "$got" = "$m1" ]; then
	echo "ok the marker read back from the volume: $got"
else
	fail "marker read back: '$got', wanted '$m1'"
fi

# 3. Five linked clones of a snapshot, each booted once.
"$MIXSAN" volume snap create vols/root@golden >/dev/null 2>&1 || fail "snap create"
"$MIXSAN" volume snap protect vols/root@golden >/dev/null 2>&1 || fail "snap protect"
clones="vm1 vm2 vm3 vm4 vm5"
for vm in $clones; do
	"$MIXSAN" volume clone vols/root@golden "vols/$vm" >/dev/null 2>&1 || fail "clone $vm"
done
serve
for vm in $clones; do
	if sh "$HERE/boot.sh" "$DIR/guest" "nbd+unix:///$vm?socket=$DIR/nbd.sock" "mark-$vm" \
		mx.cat=/marker.txt >"$DIR/boot-$vm.out" 2>&1 &&
		grep -q "MXGUEST: read /marker.txt $m1" "$DIR/guest/console-mark-$vm.log"; then
		echo "ok clone $vm booted, saw the golden marker and wrote its own"
	else
		fail "clone $vm"
		tail -n 30 "$DIR/boot-$vm.out"
	fi
	console_clean "mark-$vm"
done
unserve
"$MIXSAN" volume du vols | sed 's/^/   /'

# each_marker: every clone holds its own marker, the snapshot the first.
each_marker() {
	for vm in $clones; do
		"$MIXSAN" volume export "vols/$vm" "$DIR/$vm.img" >/dev/null 2>&1 ||
			fail "export $vm"
		got=$(sh "$HERE/readfile.sh" "$DIR/$vm.img" /marker.txt 2>&1)
		[ "$got" = "mark-$vm" ] || fail "$vm holds '$got', wanted mark-$vm ($1)"
		rm -f "$DIR/$vm.img"
	done
	"$MIXSAN" volume export vols/root@golden "$DIR/golden.img" >/dev/null 2>&1 ||
		fail "export golden"
	got=$(sh "$HERE/readfile.sh" "$DIR/golden.img" /marker.txt 2>&1)
	[ "$got" = "$m1" ] || fail "the snapshot holds '$got', wanted $m1 ($1)"
	rm -f "$DIR/golden.img"
}
each_marker "after the clones booted"
[ "$fails" = 0 ] && echo "ok each clone holds its own marker, the snapshot the first"

# 4. Boot the volume again with I/O, kill -9 an OSD meanwhile.
m2="second-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
serve
sh "$HERE/boot.sh" "$DIR/guest" "nbd+unix:///root?socket=$DIR/nbd.sock" "$m2" \
	mx.cat=/marker.txt mx.io=16 >"$DIR/boot2.out" 2>&1 &
boot=$!
# Kill when the guest is up and writing (its console says booted).
i=0
while ! grep -q "MXGUEST: booted" "$DIR/guest/console-$m2.log" 2>/dev/null && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
victim=$(cat "$MIXSAN_DATA/run/osd.2.pid" 2>/dev/null)
if [ -n "$victim" ] && kill -9 "$victim"; then
	echo "   killed osd.2 (pid $victim) while the guest runs"
else
	fail "no OSD to kill"
fi
if wait $boot; then
	echo "ok the guest's second boot succeeded with an OSD killed"
else
	fail "boot 2 with an OSD killed"
	tail -n 30 "$DIR/boot2.out"
fi
grep -q "MXGUEST: read /marker.txt $m1" "$DIR/guest/console-$m2.log" &&
	echo "ok the second boot read the first marker" || fail "the second boot did not read $m1"
grep -q "MXGUEST: io 16 MiB ok" "$DIR/guest/console-$m2.log" &&
	echo "ok the guest wrote and read back 16 MiB" || fail "the guest's I/O check"
console_clean "$m2"
unserve
"$MIXSAN" volume export vols/root "$DIR/after2.img" >/dev/null 2>&1 || fail "volume export"
got=$(sh "$HERE/readfile.sh" "$DIR/after2.img" /marker.txt 2>&1)
[ "$got" = "$m2" ] && echo "ok the volume holds the second marker" ||
	fail "the volume holds '$got', wanted $m2"
before=$fails
each_marker "after the volume booted again"
[ "$fails" = "$before" ] && echo "ok the clones and the snapshot are unchanged"

if [ "$fails" = 0 ]; then
	echo "vm_boot: all passed"
else
	echo "vm_boot: $fails failed"
fi
[ "$fails" = 0 ]
