#!/bin/sh
# Configure (once) and build mixstack into build/ (or $1).
set -eu
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=debugoptimized -Dwerror=true
fi
ninja -C "$BUILD"
