# Sourced by the tests that start nbdkit.  nbdkit_run runs nbdkit; when the
# plugin named in NBD_PLUGIN_PATH was built with the address and undefined
# behaviour sanitizers (the build-asan tree), their runtimes are preloaded,
# as they must come first in a program that is not built with them.  Leaks
# are checked by the library's own tests, not in nbdkit's process.
NBDKIT_PRELOAD=""
if [ -n "${NBD_PLUGIN_PATH:-}" ] && [ -f "$NBD_PLUGIN_PATH" ] &&
	ldd "$NBD_PLUGIN_PATH" 2>/dev/null | grep -q libasan; then
	for lib in libasan.so libubsan.so; do
		p=$(${CC:-cc} -print-file-name=$lib 2>/dev/null)
		[ -f "$p" ] && NBDKIT_PRELOAD="$NBDKIT_PRELOAD${NBDKIT_PRELOAD:+ }$p"
	done
fi

nbdkit_run() {
	if [ -n "$NBDKIT_PRELOAD" ]; then
		env LD_PRELOAD="$NBDKIT_PRELOAD" \
			ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0" nbdkit "$@"
	else
		nbdkit "$@"
	fi
}
