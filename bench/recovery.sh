#!/bin/sh
# Run the recovery benchmark on an optimised build and print its tables.
#   bench/recovery.sh [DATA_MIB] [SECONDS]
# OSD options (the recovery throttle) go in MIXSAN_BENCH_OSD_ARGS.
set -eu
cd "$(dirname "$0")/.."
BUILD=build-release
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" >/dev/null
MIXSAN_BUILD_ROOT="$PWD/$BUILD" "$BUILD/bench/recbench" "${1:-1024}" "${2:-10}"
