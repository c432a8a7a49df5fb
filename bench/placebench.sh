#!/bin/sh
# Large writes under a write-ahead log, placed by copy and by clone
# (placebench.c), on an XFS file system made for the run on a loop device
# over a file in $TMPDIR (direct I/O, so its writes reach the disk once), and
# by copy on $TMPDIR itself.  For each, the disk's written bytes per byte
# placed, from /proc/diskstats of the disk under $TMPDIR.  Root; installs
# Debian's xfsprogs for this run if mkfs.xfs is missing.
#   bench/placebench.sh BUILD_DIR [SECONDS]
set -eu
BUILD=$(cd "$1" && pwd)
SECS=${2:-10}
TMP=${TMPDIR:-/tmp}
[ "$(id -u)" = 0 ] || {
	echo "placebench.sh: needs root (a loop device and a mount)" >&2
	exit 2
}
command -v mkfs.xfs >/dev/null ||
	env DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfsprogs >/dev/null
DIR=$(mktemp -d "$TMP/mixsan-place-XXXXXX")
LOOP=""
cleanup() {
	set +e
	mountpoint -q "$DIR/mnt" && umount "$DIR/mnt"
	[ -z "$LOOP" ] || losetup -d "$LOOP"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' HUP INT PIPE TERM

# The whole disk under $TMP (a partition's parent holds the counters too).
dev=$(df --output=source "$TMP" | tail -1)
disk=$(basename "$(readlink -f "$dev")")
written() { # MiB the disk has written
	awk -v d="$disk" '$3 == d { printf "%d\n", $10 * 512 / 1048576 }' /proc/diskstats
}
one() { # FOLDER MODE LABEL
	sync
	a=$(written)
	out=$("$BUILD/bench/placebench" "$1" "$2" "$SECS") || return $?
	sync
	b=$(written)
	rate=${out#*: }
	rate=${rate%% MiB/s*}
	echo "$3, $2: $rate MiB/s a writer (3 writers); the disk wrote" \
		"$(awk -v w=$((b - a)) -v r="$rate" -v s="$SECS" \
			'BEGIN { printf "%.2f", w / (r * 3 * s + 3 * 256) }') bytes a byte"
}
truncate -s 8G "$DIR/xfs.img"
mkfs.xfs -q -m reflink=1 "$DIR/xfs.img"
LOOP=$(losetup -f --show --direct-io=on "$DIR/xfs.img")
mkdir "$DIR/mnt"
mount "$LOOP" "$DIR/mnt"
echo "== placebench: 1 MiB records, groups of 4, 3 writers, $SECS s ($(date -u +%H:%M) UTC)"
one "$DIR/mnt" copy "XFS on a loop device"
one "$DIR/mnt" clone "XFS on a loop device"
one "$TMP" copy "$(findmnt -n -o FSTYPE -T "$TMP") ($TMP)"
"$BUILD/bench/placebench" "$TMP" clone 1 >/dev/null 2>&1 ||
	echo "$(findmnt -n -o FSTYPE -T "$TMP") ($TMP), clone: not supported (exit $?)"
