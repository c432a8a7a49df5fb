#!/bin/sh
# Boot the guest built by mkguest.sh with DRIVE_URI as its root disk
# (/dev/vda), e.g. nbd+unix:///?socket=/tmp/x/nbd.sock or a raw image path.
#   boot.sh OUTDIR DRIVE_URI MARKER [extra kernel args, e.g. mx.cat=/marker.txt]
# The guest writes MARKER into mx.file (default /marker.txt) and powers off.
# The console goes to stdout and to OUTDIR/console-MARKER.log.  Exit status
# 0 only if the console shows "MXGUEST: wrote FILE MARKER" and no
# "MXGUEST: FAIL"; 1 otherwise (2 for bad arguments).
#
# Environment: MXGUEST_TIMEOUT (seconds, default 180), QEMU (default
# qemu-system-x86_64).
set -eu

usage() {
	echo "usage: boot.sh OUTDIR DRIVE_URI MARKER [kernel args...]" >&2
	exit 2
}
die() {
	printf 'boot.sh: %s\n' "$*" >&2
	exit 1
}

[ $# -ge 3 ] || usage
outdir=$1
uri=$2
marker=$3
shift 3
extra="$*"
case $marker in
'' | *[!A-Za-z0-9._-]*) die "MARKER must be letters, digits, '.', '_' or '-': $marker" ;;
esac
case $uri in
'' | *[[:space:]]*) die "bad DRIVE_URI: '$uri'" ;;
esac
timeout_s=${MXGUEST_TIMEOUT:-180}
case $timeout_s in
'' | *[!0-9]*) die "MXGUEST_TIMEOUT must be a number of seconds" ;;
esac
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null 2>&1 || die "no $qemu (Debian package qemu-system-x86)"

[ -f "$outdir/kernel" ] || die "no $outdir/kernel: run mkguest.sh $outdir first"
kernel=$(cat "$outdir/kernel")
[ -r "$kernel" ] || die "cannot read the kernel $kernel"
[ -f "$outdir/initrd.gz" ] || die "no $outdir/initrd.gz: run mkguest.sh $outdir first"

log=$outdir/console-$marker.log
# -drive splits its options at commas; a comma inside a value is doubled.
drive=$(printf '%s\n' "$uri" | sed 's/,/,,/g')

start=$(date +%s.%N)
# QEMU gets no standard input, so it runs the same with or without a tty.
# The inner braces pass the exit status of timeout (124: timed out) around
# tee on descriptor 3.
rc=$({ { st=0
	timeout -k 10 "$timeout_s" "$qemu" -accel tcg -cpu max -m 512 \
	-nographic -no-reboot -nic none \
	-kernel "$kernel" -initrd "$outdir/initrd.gz" \
	-drive "file=$drive,format=raw,if=virtio,cache=none" \
	-append "console=ttyS0 quiet panic=-1 mx.marker=$marker${extra:+ $extra}" \
	</dev/null 2>&1 || st=$?
	echo "$st" >&3; } | tee "$log" >&4; } 3>&1) 4>&1
end=$(date +%s.%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	die "marker $marker: no power-off within $timeout_s s (console: $log)"
fi
[ "$rc" = 0 ] || die "marker $marker: $qemu exited with status $rc (console: $log)"
if tr -d '\r' <"$log" | grep -q 'MXGUEST: FAIL'; then
	die "marker $marker: the guest failed after $secs s (console: $log)"
fi
tr -d '\r' <"$log" | awk -v m="$marker" '
	$1 == "MXGUEST:" && $2 == "wrote" && NF == 4 && $4 == m { ok = 1 }
	END { exit !ok }' ||
	die "marker $marker: no 'MXGUEST: wrote' line after $secs s (console: $log)"
echo "boot.sh: marker $marker written, guest ran $secs s"
