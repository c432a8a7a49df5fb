#!/bin/sh
# Run a benchmark on an optimised build and print its tables.
#   bench/run.sh [SECONDS_PER_JOB] [--auth]     object I/O (objbench), --auth
#       on a cluster with keys
#   bench/run.sh recovery [DATA_MIB] [SECONDS]  recovery (recbench); OSD
#       options (the recovery throttle) go in MIXSAN_BENCH_OSD_ARGS
#   bench/run.sh nbd [SECONDS]                  volume I/O through the NBD
#       export with fio (nbdbench.sh)
#   bench/run.sh locality [SECONDS]             reads from the primary and
#       from the nearest replica on the multi-host rig (locality.sh; root)
set -eu
cd "$(dirname "$0")/.."
BUILD=build-release
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" >/dev/null
export MIXSAN_BUILD_ROOT="$PWD/$BUILD"
if [ "${1:-}" = nbd ]; then
	exec sh bench/nbdbench.sh "$BUILD" "${2:-10}"
fi
if [ "${1:-}" = locality ]; then
	exec sh bench/locality.sh "$BUILD" "${2:-10}"
fi
if [ "${1:-}" = recovery ]; then
	exec "$BUILD/bench/recbench" "${2:-1024}" "${3:-10}"
fi
exec "$BUILD/bench/objbench" "${1:-10}" ${2:+"$2"}
