#!/bin/sh
# Record the block trace of one boot of the test guest (tests/vm), for
# bootstorm to replay against many linked clones at once.
#
#   bench/boottrace.sh OUTDIR [PAYLOAD_MIB]
#
# Builds the guest with mkguest.sh into OUTDIR with a payload of about
# PAYLOAD_MIB (default 160) of files taken from this machine (half from
# /usr/lib/x86_64-linux-gnu, half from /usr/share, each in path order, as
# a desktop's boot reads libraries and many small data files), serves a copy
# of its root image with nbdkit's log filter, boots it once with
# mx.readall=/payload and turns the log into OUTDIR/boot.trace:
#
#   # size BYTES          the image's size (first line)
#   R OFFSET LENGTH       a read
#   W OFFSET LENGTH       a write
#   F 0 0                 a flush
#   T OFFSET LENGTH       a trim or a write of zeroes
#
# one line per request in the order the guest issued them.  OUTDIR/root.img
# is left as it was before the boot: the golden image the trace starts from.
# Prints the number of requests and the bytes read and written.
#
# Environment: BOOTTRACE_SOURCES (the folders the payload comes from),
# MXGUEST_TIMEOUT (seconds for the boot, default 600 here); mkguest.sh's.
# Exit status 77 if a tool is missing.
set -eu

die() {
	printf 'boottrace: %s\n' "$*" >&2
	exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: boottrace.sh OUTDIR [PAYLOAD_MIB]" >&2
	exit 2
fi
outdir=$1
payload_mib=${2:-160}
case $payload_mib in
'' | *[!0-9]*) die "PAYLOAD_MIB must be a number of MiB: $payload_mib" ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
VM=$HERE/../tests/vm

for t in qemu-system-x86_64 nbdkit mke2fs cpio; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "boottrace: $t is not installed: skipped"
		exit 77
	fi
done
if ! ls /boot/vmlinuz-* >/dev/null 2>&1 && [ -z "${MXGUEST_KERNEL:-}" ]; then
	echo "boottrace: no kernel in /boot: skipped"
	exit 77
fi
if ! nbdkit --filter=log null --dump-plugin >/dev/null 2>&1; then
	echo "boottrace: nbdkit has no log filter: skipped"
	exit 77
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d "$outdir/.boottrace.XXXXXX")
nbd_pid=""
cleanup() {
	if [ -n "$nbd_pid" ]; then
		kill "$nbd_pid" 2>/dev/null || :
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The payload ---------------------------------------------------------
# Regular files of one link (hard links would be stored once), below
# 16 MiB, with plain names, in path order, leaving out those that would
# overshoot each folder's share of the budget.  The same machine gives the
# same payload.
sources=${BOOTTRACE_SOURCES:-/usr/lib/x86_64-linux-gnu /usr/share}
n_src=0
for d in $sources; do
	[ -d "$d" ] && n_src=$((n_src + 1))
done
[ "$n_src" -gt 0 ] || die "none of the folders $sources exists"
share=$((payload_mib * 1048576 / n_src))
: >"$work/files"
for d in $sources; do
	[ -d "$d" ] || continue
	find "$d" -type f -links 1 -readable -size -16777216c -printf '%s %p\n' 2>/dev/null |
		LC_ALL=C sort -k 2 |
		awk -v max="$share" '
			NF == 2 && $2 ~ /^[A-Za-z0-9._+\/-]+$/ && t + $1 <= max {
				t += $1
				print substr($2, 2)
				if (t >= max - 65536)
					exit
			}' >>"$work/files" || :
done
mkdir "$work/payload"
tar -C / -cf - -T "$work/files" | tar -C "$work/payload" -xf -
pl_files=$(wc -l <"$work/files")
pl_kib=$(du -sk "$work/payload" | cut -f1)
# The image: the payload, ext4's inodes and journal, and room to spare.
size_mib=$((pl_kib * 5 / 4 / 1024 + 64))
echo "boottrace: payload of $pl_files files, $((pl_kib / 1024)) MiB on disk; image $size_mib MiB"

MXGUEST_PAYLOAD="$work/payload" sh "$VM/mkguest.sh" "$outdir" "$size_mib" ||
	die "mkguest.sh failed"
rm -rf "$work/payload"

# --- One boot, logged ----------------------------------------------------
# A copy boots: root.img stays the golden image the trace starts from.
cp "$outdir/root.img" "$work/boot.img"
log=$work/nbdkit.log
nbdkit --exit-with-parent -f -P "$work/nbdkit.pid" -U "$work/nbd.sock" \
	--filter=log file "$work/boot.img" logfile="$log" >"$work/nbdkit.out" 2>&1 &
nbd_pid=$!
i=0
while [ ! -s "$work/nbdkit.pid" ]; do
	if [ $i -ge 100 ] || ! kill -0 "$nbd_pid" 2>/dev/null; then
		cat "$work/nbdkit.out" >&2
		die "nbdkit did not start within 10 s"
	fi
	sleep 0.1
	i=$((i + 1))
done

export MXGUEST_TIMEOUT="${MXGUEST_TIMEOUT:-600}"
t0=$(date +%s)
sh "$VM/boot.sh" "$outdir" "nbd+unix:///?socket=$work/nbd.sock" boottrace \
	mx.readall=/payload >"$work/boot.out" 2>&1 || {
	tail -n 20 "$work/boot.out" >&2
	die "the boot failed"
}
t1=$(date +%s)
# Stop nbdkit so the log is complete.
kill "$nbd_pid" 2>/dev/null || :
wait "$nbd_pid" 2>/dev/null || :
nbd_pid=""
readall=$(tr -d '\r' <"$outdir/console-boottrace.log" | awk '$2 == "readall" { print $4 }')
echo "boottrace: the guest booted in $((t1 - t0)) s and read ${readall:-?} KiB of payload"

# --- The log as a trace --------------------------------------------------
# A request's log line: DATE TIME connection=N ACTION id=N offset=0x.. count=0x..
# (its reply, "...ACTION", is on a line of its own).
size=$(wc -c <"$outdir/root.img")
awk -v size="$size" '
	function hex(s,   v, i, c) {
		s = tolower(s)
		sub(/^0x/, "", s)
		v = 0
		for (i = 1; i <= length(s); i++) {
			c = index("0123456789abcdef", substr(s, i, 1))
			if (c == 0)
				return -1
			v = v * 16 + c - 1
		}
		return v
	}
	function field(name,   i) {
		for (i = 5; i <= NF; i++)
			if (index($i, name "=") == 1)
				return substr($i, length(name) + 2)
		return ""
	}
	BEGIN { print "# size " size }
	$3 !~ /^connection=/ { next }
	$4 ~ /^\.\.\./ {
		if ($0 ~ /return=-1/)
			errors++
		next
	}
	$4 == "Read" || $4 == "Write" || $4 == "Trim" || $4 == "Zero" {
		op = $4 == "Read" ? "R" : $4 == "Write" ? "W" : "T"
		printf "%s %.0f %.0f\n", op, hex(field("offset")), hex(field("count"))
		next
	}
	$4 == "Flush" { print "F 0 0"; next }
	$4 == "Extents" || $4 == "Cache" { skipped[$4]++ }
	END {
		for (k in skipped)
			printf "boottrace: %d %s requests left out\n", skipped[k], k >"/dev/stderr"
		if (errors)
			printf "boottrace: %d requests failed in the boot\n", errors >"/dev/stderr"
	}' "$log" >"$work/boot.trace"
mv "$work/boot.trace" "$outdir/boot.trace"
mv "$log" "$outdir/boot.nbdkit.log"

awk '
	$1 == "R" { r++; rb += $3; h[$3 <= 4096 ? 0 : $3 <= 16384 ? 1 : $3 <= 65536 ? 2 : $3 <= 131072 ? 3 : $3 <= 262144 ? 4 : 5]++ }
	$1 == "W" { w++; wb += $3 }
	$1 == "F" { f++ }
	$1 == "T" { t++; tb += $3 }
	END {
		printf "boottrace: %d requests: %d reads (%.1f MiB), %d writes (%.1f MiB), %d flushes, %d trims (%.1f MiB)\n",
			r + w + f + t, r, rb / 1048576, w, wb / 1048576, f, t, tb / 1048576
		split("<=4K <=16K <=64K <=128K <=256K >256K", name, " ")
		printf "boottrace: read sizes:"
		for (i = 0; i < 6; i++)
			printf " %s %d", name[i + 1], h[i]
		printf "\n"
	}' "$outdir/boot.trace"
echo "boottrace: $outdir/boot.trace, golden image $outdir/root.img ($size bytes)"
