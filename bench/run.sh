#!/bin/sh
# Run a benchmark on an optimised build and print its tables.
#   bench/run.sh [SECONDS_PER_JOB] [--auth]     object I/O (objbench), --auth
#       on a cluster with keys
#   bench/run.sh recovery [DATA_MIB] [SECONDS]  recovery (recbench); OSD
#       options (the recovery throttle) go in MIXSAN_BENCH_OSD_ARGS
#   bench/run.sh nbd [SECONDS] [--ceph] [--raw] [--engine] [--xfs]  volume I/O
#       through the NBD export with fio (nbdbench.sh; 25 s a job by
#       default); --ceph: the same jobs on Ceph set up beside it in the
#       same run (its Debian packages installed if missing), through librbd
#       and qemu-nbd; --raw: on the local disk with O_DIRECT; --engine: also
#       through MixSAN's fio engine (fio/fio-mixsan.c, built against
#       Debian's source of the installed fio, fetched into fio-source/);
#       --xfs: MixSAN's OSDs on XFS with reflinks (a loop device; root)
#   bench/run.sh locality [SECONDS]             reads from the primary and
#       from the nearest replica on the multi-host rig (locality.sh; root)
#   bench/run.sh tier [SECONDS]                 cache tiering on mixed
#       workloads, with and without a tier, the base pool on emulated slow
#       disks (tierbench.sh; root)
#   bench/run.sh profile RW BS QD [SECONDS] [FIO-ARGUMENTS...]  where the
#       time goes in one job through the fio engine: perf over the whole
#       machine and strace -c of an OSD (profile.sh), on build-profile
#   bench/run.sh place [SECONDS]                large writes placed by copy
#       and by clone under a log, apart from the OSD (placebench.sh; root)
#   bench/run.sh bootstorm [N]                  N linked clones (default 20)
#       of one golden volume booting at once (bootstorm.sh)
#
# The boot storm: bench/boottrace.sh boots the test guest (tests/vm) once
# from an image holding about 160 MiB of this machine's files, which the
# guest reads all of (mx.readall), and records every block request of the
# boot through nbdkit's log filter into boot.trace, beside the golden image
# root.img.  bench/bootstorm.sh imports that image into a volume on a
# development cluster, snapshots it, makes N clones and runs bootstorm
# (bootstorm.c), which replays the trace against all N clones at once
# through one client, each in order at queue depth 1, compares what they
# read with the golden image, and prints the time until all are up.  Each
# configuration of CONFIGS in bootstorm.sh runs on fresh clones.  Set
# BOOTSTORM_TRACE_DIR to a folder to keep the trace (under a minute to make)
# for later runs.
set -eu
cd "$(dirname "$0")/.."
BUILD=build-release
ENGINE=0
case "${1:-}" in
profile)
	BUILD=build-profile # symbols and frame pointers for perf's call graphs
	ENGINE=1
	;;
nbd)
	for a in "$@"; do
		[ "$a" != --engine ] || ENGINE=1
	done
	;;
esac
if [ ! -f "$BUILD/build.ninja" ] && [ "$BUILD" = build-profile ]; then
	meson setup "$BUILD" --buildtype=release -Dc_args="-g -fno-omit-frame-pointer" >/dev/null
elif [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=release >/dev/null
fi
if [ "$ENGINE" = 1 ]; then
	src=$(scripts/fio-source.sh fio-source)
	# --reconfigure: a tree set up before the option existed knows it then.
	meson setup --reconfigure "$BUILD" "-Dfio_source=$src" >/dev/null
fi
ninja -C "$BUILD" >/dev/null
export MIXSAN_BUILD_ROOT="$PWD/$BUILD"
if [ "${1:-}" = nbd ]; then
	shift
	exec sh bench/nbdbench.sh "$BUILD" "$@"
fi
if [ "${1:-}" = profile ]; then
	shift
	exec sh bench/profile.sh "$BUILD" "$@"
fi
if [ "${1:-}" = bootstorm ]; then
	exec sh bench/bootstorm.sh "$BUILD" "${2:-20}"
fi
if [ "${1:-}" = tier ]; then
	exec sh bench/tierbench.sh "$BUILD" "${2:-20}"
fi
if [ "${1:-}" = locality ]; then
	exec sh bench/locality.sh "$BUILD" "${2:-10}"
fi
if [ "${1:-}" = place ]; then
	exec sh bench/placebench.sh "$BUILD" "${2:-10}"
fi
if [ "${1:-}" = recovery ]; then
	exec "$BUILD/bench/recbench" "${2:-1024}" "${3:-10}"
fi
exec "$BUILD/bench/objbench" "${1:-10}" ${2:+"$2"}
