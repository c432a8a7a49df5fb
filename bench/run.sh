#!/bin/sh
# Run the object benchmark on an optimised build and print its table.
#   bench/run.sh [SECONDS_PER_JOB]
set -eu
cd "$(dirname "$0")/.."
BUILD=build-release
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" >/dev/null
MIXSAN_BUILD_ROOT="$PWD/$BUILD" "$BUILD/bench/objbench" "${1:-10}"
