#!/bin/sh
# Check the guest tooling by hand (not part of meson test): build a guest,
# serve a copy of its root.img with `nbdkit file` on a unix socket, boot it
# twice over NBD and read what the guest wrote back from the image.
#   selftest.sh [WORKDIR]
# Without WORKDIR a temporary folder is used and removed at the end.
# Two boots, about 10 s of one core each under TCG.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
die() {
	printf 'selftest: %s\n' "$*" >&2
	exit 1
}
command -v nbdkit >/dev/null 2>&1 || die "no nbdkit (Debian package nbdkit)"

if [ $# -ge 1 ]; then
	work=$1
	mkdir -p "$work"
	keep=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/mxguest-selftest.XXXXXX")
	keep=0
fi
nbd_pid=""
cleanup() {
	if [ -n "$nbd_pid" ]; then
		kill "$nbd_pid" 2>/dev/null || true
		wait "$nbd_pid" 2>/dev/null || true
	fi
	if [ "$keep" = 0 ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

guest=$work/guest
disk=$work/disk.img
sock=$work/nbd.sock
"$here/mkguest.sh" "$guest"
cp "$guest/root.img" "$disk"

rm -f "$sock"
nbdkit --exit-with-parent -U "$sock" file "$disk" </dev/null &
nbd_pid=$!
i=0
while [ ! -S "$sock" ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || die "nbdkit did not create $sock within 10 s"
	kill -0 "$nbd_pid" 2>/dev/null || die "nbdkit exited"
	sleep 0.1
done
uri="nbd+unix:///?socket=$sock"

# Boot 1 writes its marker into /marker.txt.
m1=first-$$
"$here/boot.sh" "$guest" "$uri" "$m1"
got=$("$here/readfile.sh" "$disk" /marker.txt)
[ "$got" = "$m1" ] || die "boot 1: /marker.txt holds '$got', not '$m1'"
echo "selftest: boot 1: /marker.txt in the image holds $got"

# Boot 2 shows what boot 1 wrote, then writes its own marker elsewhere.
m2=second-$$
"$here/boot.sh" "$guest" "$uri" "$m2" mx.cat=/marker.txt mx.file=/data/second.txt
tr -d '\r' <"$guest/console-$m2.log" | grep -qx "MXGUEST: read /marker.txt $m1" ||
	die "boot 2 did not show boot 1's marker"
got=$("$here/readfile.sh" "$disk" /data/second.txt)
[ "$got" = "$m2" ] || die "boot 2: /data/second.txt holds '$got', not '$m2'"
got=$("$here/readfile.sh" "$disk" /marker.txt)
[ "$got" = "$m1" ] || die "boot 2 changed /marker.txt to '$got'"
echo "selftest: boot 2: saw $m1, /data/second.txt in the image holds $m2"

# The file system the guest left behind is clean.
e2fsck -fn "$disk" >"$work/e2fsck.log" 2>&1 ||
	die "e2fsck finds errors in the image: $(cat "$work/e2fsck.log")"
echo "selftest: passed"
