#!/bin/sh
# Print a file from a raw ext4 image without mounting it:
#   readfile.sh IMAGE PATH
# Exit status 1 if PATH is not a regular file in the image.  debugfs reads
# what is on the disk: use it once the guest has stopped, or after the guest
# synced (boot.sh's guest remounts its root read-only before powering off).
set -eu

die() {
	printf 'readfile.sh: %s\n' "$*" >&2
	exit 1
}

if [ $# -ne 2 ]; then
	echo "usage: readfile.sh IMAGE PATH" >&2
	exit 2
fi
image=$1
path=$2
[ -r "$image" ] || die "cannot read $image"
case $path in
*'"'* | *\\*) die "PATH must not hold quotes or backslashes: $path" ;;
/*) ;;
*) die "PATH must be absolute: $path" ;;
esac
command -v debugfs >/dev/null 2>&1 || die "no debugfs (Debian package e2fsprogs)"

# debugfs reports a missing file on stderr and still exits 0, so check the
# type first.
info=$(timeout 60 debugfs -R "stat \"$path\"" "$image" 2>&1) ||
	die "debugfs failed on $image: $info"
case $info in
*"Type: regular"*) ;;
*"File not found"*) die "no $path in $image" ;;
*) die "$path in $image is not a regular file" ;;
esac
timeout 60 debugfs -R "cat \"$path\"" "$image" 2>/dev/null
