# shellcheck shell=sh disable=SC2034 # MIXSAN and the like are for the sourcing script
# Sourced by the rig's daemon tests (mon_partition.sh, host_cut.sh): real
# monitors and OSDs on the hosts of a rig (scripts/rig.sh), a rig of the
# test's own (prefix P, set by the test with $$ in it) and a folder of its
# own (DIR) for the daemons' data and logs.  fail and mx_require come from
# tests/nbd/lib.sh.
#
# Every helper is bounded in time: each command line call runs under a
# timeout, each wait has a limit.  Monitor i (1..3) is called a, b, c and
# runs on host i with its client service on port 6789 and Raft on 6790.
HERE=${HERE:?}
# shellcheck source=../nbd/lib.sh
. "$HERE/../nbd/lib.sh"

BUILD="${MIXSAN_BUILD_ROOT:?}"
RIG="$(cd "$HERE/../../scripts" && pwd)/rig.sh"
MIXSAN="$BUILD/cli/mixsan"
MON_BIN="$BUILD/mon/mixsan-mon"
OSD_BIN="$BUILD/osd/mixsan-osd"
fails=0
DIR=""

# rig ARGS...: rig.sh on this test's rig, 30 s at most.
rig() {
	timeout 30 sh "$RIG" --prefix "$P" "$@"
}

# rig_cleanup: the exit trap: the rig down (every daemon in it killed), the
# folder removed unless something failed (or MIXSAN_TEST_KEEP=1).
rig_cleanup() {
	rc=$?
	rig down >/dev/null 2>&1
	wait 2>/dev/null
	[ -n "$DIR" ] || return
	if [ "$fails" = 0 ] && [ "$rc" = 0 ] && [ "${MIXSAN_TEST_KEEP:-0}" = 0 ]; then
		rm -rf "$DIR"
	else
		echo "kept $DIR"
	fi
}

# rig_init NAME HOSTS: skip (77) unless root with the tools, or where the
# rig cannot be built; then the folder, the exit trap and a rig of HOSTS
# hosts under prefix P.
rig_init() {
	if [ "$(id -u)" != 0 ]; then
		echo "$1: not root: skipped"
		exit 77
	fi
	mx_require ip nft timeout awk
	if ! ip netns add "${P}probe" 2>/dev/null; then
		echo "$1: cannot make a network namespace: skipped"
		exit 77
	fi
	ip netns del "${P}probe"
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-$1-XXXXXX")
	trap rig_cleanup EXIT
	trap 'exit 1' HUP INT TERM
	if ! rig up "$2" >"$DIR/rig.log" 2>&1; then
		cat "$DIR/rig.log"
		echo "$1: the rig cannot be built: skipped"
		exit 77
	fi
	echo "rig $P: $2 hosts, folder $DIR"
}

# now: the time in seconds, with nanoseconds.
now() {
	date +%s.%N
}

# since T: seconds from T to now, to a tenth.
since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# wait_until SECONDS COMMAND...: run COMMAND every 0.2 s until it
# succeeds; 1 if it has not after SECONDS.
wait_until() {
	_limit=$1
	shift
	_t0=$(now)
	while ! "$@"; do
		if awk -v a="$_t0" -v b="$(now)" -v l="$_limit" 'BEGIN { exit !(b - a >= l) }'; then
			return 1
		fi
		sleep 0.2
	done
}

# mixsan_in HOST ARGS...: the command line inside HOST, 30 s at most.
mixsan_in() {
	_h=$1
	shift
	rig exec "$_h" timeout 30 "$MIXSAN" "$@"
}

mon_name() {
	echo "$1" | tr 12345 abcde
}

mon_host() {
	echo "$1" | tr abcde 12345
}

# mon_addr HOST: the client address of the monitor on HOST.
mon_addr() {
	echo "$(rig addr "$1"):6789"
}

# start_mons N: monitors a, b, ... on hosts 1..N, one quorum; their pids in
# $DIR/mon.NAME.pid, their logs in $DIR/mon.NAME.log.  MON_LIST gets every
# client address, comma separated.
start_mons() {
	_spec=""
	MON_LIST=""
	_i=1
	while [ "$_i" -le "$1" ]; do
		_a=$(rig addr "$_i")
		_spec="$_spec${_spec:+,}$(mon_name "$_i")=$_a:6789/$_a:6790"
		MON_LIST="$MON_LIST${MON_LIST:+,}$_a:6789"
		_i=$((_i + 1))
	done
	_i=1
	while [ "$_i" -le "$1" ]; do
		_n=$(mon_name "$_i")
		# Not under timeout: the rig's down ends it.  rig.sh exec execs
		# it, so $! is the monitor.
		sh "$RIG" --prefix "$P" exec "$_i" "$MON_BIN" --data "$DIR/mon.$_n" --name "$_n" \
			--mons "$_spec" >>"$DIR/mon.$_n.log" 2>&1 &
		echo $! >"$DIR/mon.$_n.pid"
		_i=$((_i + 1))
	done
}

# mon_status HOST: the first line of `mon status` of the monitor on HOST,
# asked from inside HOST of that monitor alone (10 s at most).
mon_status() {
	rig exec "$1" timeout 10 "$MIXSAN" --mon "$(mon_addr "$1")" mon status 2>/dev/null |
		head -n 1
}

# field LINE KEY: the word after KEY in a `mon status` line.
field() {
	echo "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}

# mon_field HOST KEY: that field of HOST's monitor's status.
mon_field() {
	field "$(mon_status "$1")" "$2"
}

# leader_host N: the host of the monitor that says it leads (among hosts
# 1..N); nothing if none does.
leader_host() {
	_i=1
	while [ "$_i" -le "$1" ]; do
		if [ "$(mon_field "$_i" role)" = leader ]; then
			echo "$_i"
			return 0
		fi
		_i=$((_i + 1))
	done
	return 1
}

# agree HOST...: every monitor on those hosts knows the same leader, which
# is one of them and says it leads, and all are at the same epoch.
agree() {
	_l="" _e=""
	for _h in "$@"; do
		_s=$(mon_status "$_h")
		_ln=$(field "$_s" leader_name)
		_ep=$(field "$_s" epoch)
		case $_ln in '' | -) return 1 ;; esac
		[ -z "$_l" ] || [ "$_l" = "$_ln" ] || return 1
		[ -z "$_e" ] || [ "$_e" = "$_ep" ] || return 1
		_l=$_ln _e=$_ep
	done
	_lh=$(mon_host "$_l")
	case " $* " in
	*" $_lh "*) ;;
	*) return 1 ;;
	esac
	[ "$(mon_field "$_lh" role)" = leader ]
}

# show_mons N: every monitor's status line, as each sees itself.
show_mons() {
	_i=1
	while [ "$_i" -le "$1" ]; do
		echo "   host $_i: $(mon_status "$_i")"
		_i=$((_i + 1))
	done
}

# stop_daemon NAME PIDFILE: SIGTERM the daemon started by this shell (its
# pid in PIDFILE), SIGKILL after 20 s; it must exit with 0.
stop_daemon() {
	_p=$(cat "$2" 2>/dev/null)
	[ -n "$_p" ] || return 0
	if ! kill -TERM "$_p" 2>/dev/null; then
		fail "$1 (pid $_p) is not running any more"
		return 1
	fi
	_i=0
	while kill -0 "$_p" 2>/dev/null &&
		[ "$(awk '{ print $3 }' "/proc/$_p/stat" 2>/dev/null)" != Z ]; do
		_i=$((_i + 1))
		if [ "$_i" -ge 200 ]; then
			fail "$1 (pid $_p) did not stop within 20 s of SIGTERM"
			kill -KILL "$_p" 2>/dev/null
			break
		fi
		sleep 0.1
	done
	wait "$_p"
	_rc=$?
	rm -f "$2"
	[ "$_rc" = 0 ] || fail "$1 exited with $_rc on SIGTERM"
}

# check_log NAME LOG: no error line and no sanitizer report in a daemon's
# log.
check_log() {
	_e=$(grep -c -e "] error: " -e "AddressSanitizer" -e "runtime error:" "$2")
	[ "$_e" = 0 ] || fail "$1 logged $_e errors: $(grep -e "] error: " -e "AddressSanitizer" -e "runtime error:" "$2" | head -n 5)"
}
