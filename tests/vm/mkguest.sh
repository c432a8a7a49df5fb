#!/bin/sh
# Build a guest for the VM tests into OUTDIR:
#   kernel     the path of the kernel to boot (newest /boot/vmlinuz-*)
#   initrd.gz  busybox initramfs: loads the virtio-blk and ext4 modules of
#              that kernel, mounts /dev/vda as ext4 and switch_roots into it
#   root.img   raw ext4 image (SIZE_MIB, default 64) with static busybox and
#              an /sbin/init that writes mx.marker into mx.file and powers off
#   modules    the modules the initramfs loads, in load order
# Needs no root privileges: no loop mounts, no device nodes.
#
# With MXGUEST_PAYLOAD naming a folder, its contents are copied into the
# root image under /payload (SIZE_MIB must leave room for them), e.g. for a
# boot that reads a desktop's worth of files with mx.readall=/payload; the
# image then has blocks of 4 KiB (1 KiB otherwise, mke2fs's choice for a
# small file system).
#
# Environment: MXGUEST_KERNEL (a vmlinuz to use instead of the newest one),
# MXGUEST_KVER (its module version, when its name is not vmlinuz-VERSION),
# MXGUEST_MODROOT (the folder holding lib/modules/VERSION, default /, e.g.
# a kernel package unpacked with dpkg -x), MXGUEST_BUSYBOX (a static
# busybox, default /bin/busybox).
set -eu

die() {
	printf 'mkguest: %s\n' "$*" >&2
	exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	die "usage: mkguest.sh OUTDIR [SIZE_MIB]"
fi
outdir=$1
size_mib=${2:-64}
case $size_mib in
'' | *[!0-9]*) die "SIZE_MIB must be a number of MiB: $size_mib" ;;
esac
[ "$size_mib" -ge 16 ] || die "SIZE_MIB must be at least 16"
payload=${MXGUEST_PAYLOAD:-}
if [ -n "$payload" ]; then
	[ -d "$payload" ] || die "MXGUEST_PAYLOAD is not a folder: $payload"
fi

for tool in modinfo tsort cpio gzip mke2fs truncate ldd; do
	command -v "$tool" >/dev/null 2>&1 || die "needs $tool on the PATH"
done

# The kernel: the newest /boot/vmlinuz-* unless one is given.
if [ -n "${MXGUEST_KERNEL:-}" ]; then
	kernel=$MXGUEST_KERNEL
else
	kernel=$(for f in /boot/vmlinuz-*; do
		[ -f "$f" ] && printf '%s\n' "$f"
	done | sort -V | tail -n 1)
	[ -n "$kernel" ] || die "no /boot/vmlinuz-* (Debian package linux-image-amd64)"
fi
[ -r "$kernel" ] || die "cannot read the kernel $kernel"
kver=${MXGUEST_KVER:-}
if [ -z "$kver" ]; then
	case ${kernel##*/} in
	vmlinuz-?*) kver=${kernel##*/vmlinuz-} ;;
	*) die "cannot tell the module version of $kernel: set MXGUEST_KVER" ;;
	esac
fi
modroot=${MXGUEST_MODROOT:-/}
[ -d "$modroot/lib/modules/$kver" ] || die "no $modroot/lib/modules/$kver for $kernel"

busybox=${MXGUEST_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || die "no $busybox (Debian package busybox-static)"
ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' ||
	die "$busybox is not statically linked (Debian package busybox-static)"

mkdir -p "$outdir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkguest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Modules -------------------------------------------------------------
# Start from the drivers the guest needs and follow "depends" (hard: the
# guest stops if one does not load) and "softdep" (soft: loaded when it can,
# e.g. ext4's pre: crypto-crc32c, which names several implementations).
# Modules built into the kernel need no file.  tsort puts every module after
# the ones it needs.
mods=$tmp/mods
mkdir "$mods"
: >"$mods/edges"
: >"$mods/list"
: >"$mods/soft"

# A spec is KIND,NAME,PARENT,REL: REL dep or pre puts NAME before PARENT,
# post puts it after.
pending="hard,virtio_pci,, hard,virtio_blk,, hard,ext4,,"
later=""
while [ -n "$pending" ]; do
	next=""
	for spec in $pending; do
		IFS=, read -r kind name parent rel <<EOF
$spec
EOF
		files=$(modinfo -b "$modroot" -k "$kver" -F filename "$name" 2>/dev/null) || {
			if [ "$kind" = soft ]; then
				continue
			fi
			die "kernel $kver has no module $name${parent:+ (needed by $parent)}"
		}
		for file in $files; do
			if [ "$file" = "(builtin)" ]; then
				continue
			fi
			mod=${file##*/}
			mod=$(printf '%s\n' "${mod%%.ko*}" | tr - _)
			case $rel in
			dep | pre) echo "$mod $parent" >>"$mods/edges" ;;
			post) echo "$parent $mod" >>"$mods/edges" ;;
			*) echo "$mod $mod" >>"$mods/edges" ;;
			esac
			if grep -q "^$mod " "$mods/list"; then
				continue
			fi
			echo "$mod $file" >>"$mods/list"
			if [ "$kind" = soft ]; then
				echo "$mod" >>"$mods/soft"
			fi
			deps=$(modinfo -F depends "$file")
			for dep in $(printf '%s\n' "$deps" | tr , ' '); do
				next="$next $kind,$dep,$mod,dep"
			done
			# "pre: a b post: c" on one line or several
			where=""
			for word in $(modinfo -F softdep "$file"); do
				case $word in
				pre:) where=pre ;;
				post:) where=post ;;
				*)
					if [ -n "$where" ]; then
						later="$later soft,$word,$mod,$where"
					fi
					;;
				esac
			done
		done
	done
	pending=$next
	# Soft dependencies only once every hard one is known, so a module
	# that is needed for certain is never marked optional.
	if [ -z "$pending" ]; then
		pending=$later
		later=""
	fi
done

ird=$tmp/initrd
mkdir -p "$ird/lib/modules"
tsort "$mods/edges" >"$mods/order"
loads=""
while read -r mod; do
	file=$(grep "^$mod " "$mods/list" | cut -d' ' -f2-)
	[ -n "$file" ] || continue
	case $file in
	*.ko) cp "$file" "$ird/lib/modules/$mod.ko" ;;
	*.ko.xz) xz -dc "$file" >"$ird/lib/modules/$mod.ko" ;;
	*.ko.zst) zstd -qdc "$file" >"$ird/lib/modules/$mod.ko" ;;
	*.ko.gz) gzip -dc "$file" >"$ird/lib/modules/$mod.ko" ;;
	*) die "unknown module file type: $file" ;;
	esac
	if grep -qx "$mod" "$mods/soft"; then
		loads="${loads}load $mod optional
"
	else
		loads="${loads}load $mod
"
	fi
done <"$mods/order"

# --- Busybox with its applet links ---------------------------------------
install_busybox() {
	mkdir -p "$1/bin" "$1/sbin" "$1/usr/bin" "$1/usr/sbin"
	cp "$busybox" "$1/bin/busybox"
	"$busybox" --list-full | while read -r applet; do
		case $applet in
		bin/busybox | sbin/init | linuxrc) continue ;;
		esac
		[ -e "$1/$applet" ] || ln -s /bin/busybox "$1/$applet"
	done
}

# --- initramfs -----------------------------------------------------------
install_busybox "$ird"
mkdir -p "$ird/dev" "$ird/proc" "$ird/sys" "$ird/newroot"
{
	cat <<'EOF'
#!/bin/sh
# initramfs init written by tests/vm/mkguest.sh
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel opens /dev/console for init when the initramfs has one.
[ -e /proc/self/fd/1 ] || exec </dev/console >/dev/console 2>&1

fail() {
	echo "MXGUEST: FAIL $*"
	dmesg | tail -n 20 | sed 's/^/MXGUEST:   kernel: /'
	sleep 0.5 # let the serial port send the lines
	poweroff -f
	exit 1
}
load() {
	if ! insmod "/lib/modules/$1.ko"; then
		[ "${2:-}" = optional ] || fail "insmod $1"
		echo "MXGUEST: optional module $1 did not load"
	fi
}
EOF
	printf '%s' "$loads"
	cat <<'EOF'
i=0
while [ ! -b /dev/vda ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || fail "no /dev/vda after 30 s"
	sleep 0.1
done
mount -t ext4 -o rw /dev/vda /newroot || fail "mount -t ext4 /dev/vda"
[ -x /newroot/sbin/init ] || fail "no executable /sbin/init on /dev/vda"
[ -d /newroot/dev ] || fail "no /dev on /dev/vda"
umount /sys
umount /proc
mount --move /dev /newroot/dev || fail "mount --move /dev"
exec switch_root /newroot /sbin/init
EOF
} >"$ird/init"
chmod 755 "$ird/init"
(cd "$ird" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
	gzip -9n >"$tmp/initrd.gz"

# --- root image ----------------------------------------------------------
root=$tmp/root
install_busybox "$root"
mkdir -p "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
cat >"$root/sbin/init" <<'EOF'
#!/bin/sh
# /sbin/init of the test guest, written by tests/vm/mkguest.sh.
# Kernel command line: mx.marker=WORD (required) is written with a newline
# into mx.file=NAME (default /marker.txt); mx.cat=NAME is printed first, so
# a boot can show what an earlier boot wrote; mx.io=MIB writes and reads
# back MIB of data first; mx.readall=PATH reads every file under PATH.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH

fail() {
	echo "MXGUEST: FAIL $*"
	sync
	sleep 0.5 # let the serial port send the line
	poweroff -f
	exit 1
}
mounted() {
	grep -q "^[^ ]* $1 " /proc/mounts
}

mount -t proc proc /proc || fail "mount /proc"
mounted /sys || mount -t sysfs sysfs /sys || fail "mount /sys"
mounted /dev || mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
echo "MXGUEST: booted"

marker=""
file=/marker.txt
show=""
io=""
readall=""
set -f
for arg in $(cat /proc/cmdline); do
	case $arg in
	mx.marker=*) marker=${arg#mx.marker=} ;;
	mx.file=*) file=${arg#mx.file=} ;;
	mx.cat=*) show=${arg#mx.cat=} ;;
	mx.io=*) io=${arg#mx.io=} ;;
	mx.readall=*) readall=${arg#mx.readall=} ;;
	esac
done
set +f
[ -n "$marker" ] || fail "no mx.marker= on the kernel command line"
case $file in
/*) ;;
*) fail "mx.file must be an absolute path: $file" ;;
esac

# mx.readall=PATH: read every regular file under PATH, in the order of
# their paths, as a desktop's boot reads its programs and their data.
if [ -n "$readall" ]; then
	[ -d "$readall" ] || fail "mx.readall: no folder $readall"
	bytes=$(
		set -o pipefail
		find "$readall" -type f -print0 | sort -z | xargs -0 -r cat | wc -c
	) || fail "mx.readall: reading $readall"
	echo "MXGUEST: readall $readall $((bytes / 1024)) KiB"
fi

if [ -n "$show" ]; then
	if [ -f "$show" ]; then
		echo "MXGUEST: read $show $(cat "$show")"
	else
		echo "MXGUEST: missing $show"
	fi
fi

# mx.io=MIB: write MIB of random data, sync, drop the page cache and read
# it back: the disk must give back what it took.
if [ -n "$io" ]; then
	dd if=/dev/urandom of=/io.bin bs=1M count="$io" 2>/dev/null || fail "write /io.bin"
	sync || fail "sync /io.bin"
	sum1=$(md5sum </io.bin)
	echo 3 >/proc/sys/vm/drop_caches
	sum2=$(md5sum </io.bin) || fail "read /io.bin"
	[ "$sum1" = "$sum2" ] || fail "/io.bin read back differs"
	rm -f /io.bin
	echo "MXGUEST: io $io MiB ok"
fi

mkdir -p "${file%/*}/" || fail "mkdir ${file%/*}"
printf '%s\n' "$marker" >"$file" || fail "write $file"
sync || fail "sync"
echo "MXGUEST: wrote $file $marker"

mount -o remount,ro / || fail "remount / read-only"
echo "MXGUEST: poweroff"
sleep 0.5 # let the serial port send the lines
poweroff -f
EOF
chmod 755 "$root/sbin/init"
if [ -n "$payload" ]; then
	mkdir "$root/payload"
	cp -R "$payload/." "$root/payload/" || die "cannot copy the payload $payload"
fi
# With a payload, room for the files, ext4's inode tables (an inode per
# 4 KiB in a small file system), its journal (up to 16 MiB below 1 GiB) and
# slack; without one the image holds little more than busybox.
need_kib=$(du -sk "$root" | cut -f1)
if [ -n "$payload" ]; then
	payload_kib=$(du -sk "$root/payload" | cut -f1)
	need_mib=$((need_kib * 9 / 8 / 1024 + 40))
	if [ "$need_mib" -gt "$size_mib" ]; then
		die "SIZE_MIB $size_mib is too small for a payload of $((payload_kib / 1024)) MiB ($payload): give at least $need_mib"
	fi
fi
# mke2fs gives a file system below 512 MiB blocks of 1 KiB; one with a
# payload gets the 4 KiB blocks of a desktop's root file system, so its
# boot reads as a desktop's does.
blocks=""
[ -z "$payload" ] || blocks="-b 4096"
rm -f "$tmp/root.img"
truncate -s "${size_mib}M" "$tmp/root.img"
# shellcheck disable=SC2086 # $blocks is empty or two words
mke2fs -q -F -t ext4 $blocks -L mxguest -E root_owner=0:0 -d "$root" "$tmp/root.img" ||
	die "mke2fs could not make a ${size_mib} MiB image of $((need_kib / 1024)) MiB of files: give a larger SIZE_MIB"

# Every output appears whole or not at all.
mv "$tmp/initrd.gz" "$outdir/initrd.gz"
mv "$tmp/root.img" "$outdir/root.img"
printf '%s\n' "$kernel" >"$outdir/kernel"
cut -d' ' -f1 <"$mods/order" | while read -r mod; do
	grep -q "^$mod " "$mods/list" || continue
	if grep -qx "$mod" "$mods/soft"; then
		echo "$mod optional"
	else
		echo "$mod"
	fi
done >"$outdir/modules"
echo "mkguest: $outdir: kernel $kernel, $(wc -l <"$outdir/modules") modules, root.img ${size_mib} MiB${payload:+, payload $((payload_kib / 1024)) MiB}"
