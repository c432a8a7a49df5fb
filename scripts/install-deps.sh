#!/bin/sh
# Install the Debian 12 packages that mixstack needs to build and test.
# Safe to run again; needs root (or sudo).
set -eu

PKGS="build-essential meson ninja-build pkg-config
      libuv1-dev libisal-dev libjansson-dev libraft-dev libssl-dev
      python3 procps iproute2 nftables iputils-ping
      nbdkit nbdkit-plugin-dev libnbd-dev qemu-utils fio
      qemu-system-x86 linux-image-amd64 busybox-static cpio kmod e2fsprogs
      libfuse3-dev xfsprogs"

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "Installing:$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
