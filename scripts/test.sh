#!/bin/sh
# Install what is needed, build, and run the whole test suite twice: in the
# normal build and in an AddressSanitizer + UndefinedBehaviorSanitizer
# build.  Ends with the line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
./scripts/install-deps.sh || exit 1
# The fio engine is built against Debian's source of the installed fio
# (docs/fio-engine.md), fetched once into fio-source/.
FIO_OPT=""
if src=$(./scripts/fio-source.sh fio-source); then
	FIO_OPT="-Dfio_source=$src"
else
	echo "note: fio's source could not be fetched: the fio engine and its test are left out"
fi

fail=0
run_suite() {
	dir="$1"; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" -Dwerror=true "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
	# MESON_TEST_ARGS narrows the run (e.g. "--suite unit", or a test name).
	meson test -C "$dir" --print-errorlogs --num-processes 1 ${MESON_TEST_ARGS:-} || fail=1
}

run_suite build --buildtype=debugoptimized ${FIO_OPT:+"$FIO_OPT"} || fail=1
# The sanitizer build runs the same tests.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan --buildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false ${FIO_OPT:+"$FIO_OPT"} || fail=1

python3 scripts/count-results.py build/meson-logs/testlog.json \
	build-asan/meson-logs/testlog.json
res=$?
[ "$fail" = 0 ] && [ "$res" = 0 ]
