#!/bin/sh
# The monitor quorum across network partitions (docs/monitor-quorum.md),
# on a rig of 3 hosts (scripts/rig.sh) with monitors a, b, c one per host:
#
#  1. A follower cut off (every packet of its host dropped): the other two
#     keep committing map changes, and both serve each new epoch; the lone
#     monitor gives up its leader within a few seconds, its epoch stays,
#     and a map change sent to it alone from inside its host fails and
#     changes nothing.  Healed, it catches up to the same epoch and content
#     (pools, OSDs) as the others within 10 s.
#  2. The leader cut off: the other two elect a new leader and commit; the
#     old one steps down within a few seconds and its epoch stays; a change
#     sent to it alone right at the cut, while it may still believe it
#     leads, never commits.  Healed, it follows the new leader and catches
#     up within 10 s.
#  3. A follower cut from the leader only (a partial partition; both still
#     reach the third): the leader stays the leader, in the same term, and
#     commits with the third; the parted follower knows no leader and
#     stays at its epoch until healed, then catches up within 10 s.
#
# Prints the times measured: election after the cut, step-down of the old
# leader, catch-up after the heal.  Only the rig's addresses are contacted.
# Skipped (77) when not root or where the rig cannot be built.  Every wait
# is bounded; the folder (monitor logs) is kept on failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
P="mxmp$$-"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

rig_init mon_partition 3

# change_in HOST ARGS...: a map change sent from inside HOST to the two
# monitors given in MAJ (a comma-separated pair); must succeed.
change_in() {
	_h=$1
	shift
	if ! mixsan_in "$_h" --mon "$MAJ" "$@" >"$DIR/out" 2>&1; then
		fail "'$*' through $MAJ: $(cat "$DIR/out")"
		return 1
	fi
}

# lone_change HOST NAME: `pool create NAME` sent from inside HOST to the
# monitor there alone, in the background (90 s at most); its exit status,
# output and seconds taken land in $DIR/NAME.rc, .out and .time.
lone_change() {
	(
		_t=$(now)
		timeout 90 sh "$RIG" --prefix "$P" exec "$1" "$MIXSAN" --mon "$(mon_addr "$1")" \
			pool create "$2" --size 3 --pg-num 8 >"$DIR/$2.out" 2>&1
		_rc=$?
		since "$_t" >"$DIR/$2.time"
		echo "$_rc" >"$DIR/$2.rc"
	) &
}

# lone_change_failed NAME: that change ended, with an error.
lone_change_failed() {
	if ! wait_until 95 test -s "$DIR/$1.rc"; then
		fail "the change '$1' did not end"
		return 1
	fi
	rc=$(cat "$DIR/$1.rc")
	if [ "$rc" = 0 ]; then
		fail "the change '$1' sent to the cut-off monitor succeeded: $(cat "$DIR/$1.out")"
		return 1
	fi
	if [ "$rc" = 124 ]; then
		fail "the command line sending '$1' did not give up by itself within 90 s (its operation timeout is 30 s)"
		return 1
	fi
	echo "ok the change '$1' failed after $(cat "$DIR/$1.time") s (exit $rc: $(tr '\n' ' ' <"$DIR/$1.out"))"
}

# raft_sockets: every host's TCP connections of the Raft service, with
# their send queues and timers (why a message does not get through).
raft_sockets() {
	for h in 1 2 3; do
		echo "   host $h Raft connections (state, recv-q, send-q, local, peer, timer):"
		rig exec "$h" ss -tnoH '( sport = :6790 or dport = :6790 )' | sed 's/^/     /'
	done
}

# caught_up HOST LEADER_NAME EPOCH WHAT: the monitor on HOST follows
# LEADER_NAME at EPOCH within 10 s of the heal (t_heal), heartbeats being
# 100 ms apart; if not, how long it took (150 s at most) and why.
caught_up() {
	if wait_until 10 follows "$1" "$2" "$3"; then
		echo "ok mon.$(mon_name "$1") $4 to epoch $3 $(since "$t_heal") s after the heal"
		return 0
	fi
	fail "mon.$(mon_name "$1") not caught up 10 s after the heal: $(mon_status "$1")"
	raft_sockets
	if wait_until 140 follows "$1" "$2" "$3"; then
		echo "   caught up $(since "$t_heal") s after the heal"
	else
		echo "   not caught up 150 s after the heal"
	fi
}

# epoch_is HOST EPOCH: the monitor on HOST serves EPOCH.
epoch_is() {
	[ "$(mon_field "$1" epoch)" = "$2" ]
}

# knows_no_leader HOST: the monitor on HOST neither leads nor knows a
# leader.
knows_no_leader() {
	_s=$(mon_status "$1")
	[ -n "$_s" ] && [ "$(field "$_s" role)" != leader ] && [ "$(field "$_s" leader_name)" = - ]
}

not_leader() {
	_r=$(mon_field "$1" role)
	[ -n "$_r" ] && [ "$_r" != leader ]
}

# follows HOST LEADER_NAME EPOCH: the monitor on HOST is a follower of
# LEADER_NAME at EPOCH.
follows() {
	_s=$(mon_status "$1")
	[ "$(field "$_s" role)" = follower ] && [ "$(field "$_s" leader_name)" = "$2" ] &&
		[ "$(field "$_s" epoch)" = "$3" ]
}

# new_leader_among HOST HOST OLD: one of the two leads, is not OLD, and the
# other follows it; its host in NEWL.
new_leader_among() {
	agree "$1" "$2" || return 1
	NEWL=$(mon_host "$(mon_field "$1" leader_name)")
	[ "$NEWL" != "$3" ]
}

# same_view WHAT...: the pools and OSDs as each monitor alone serves them,
# asked from inside its host, are the same on all three; each must hold
# the pools named in $HAVE and none of those in $NOT.
same_view() {
	for h in 1 2 3; do
		a=$(mon_addr "$h")
		{
			mixsan_in "$h" --mon "$a" --json pool ls || echo "pool ls failed"
			mixsan_in "$h" --mon "$a" --json osd ls || echo "osd ls failed"
		} >"$DIR/view.$h" 2>&1
	done
	for h in 2 3; do
		cmp -s "$DIR/view.1" "$DIR/view.$h" ||
			fail "monitors a and $(mon_name "$h") serve different maps: $(diff "$DIR/view.1" "$DIR/view.$h" | head -n 20)"
	done
	for n in $HAVE; do
		grep -q "\"name\": \"$n\"" "$DIR/view.1" || fail "pool $n is missing"
	done
	for n in $NOT; do
		if grep -q "\"name\": \"$n\"" "$DIR/view.1"; then
			fail "pool $n, sent to a cut-off monitor, is in the map"
		fi
	done
	echo "ok every monitor serves the same pools and OSDs ($(grep -c '"name"' "$DIR/view.1") pools)"
}

# others HOST: X1 and X2 get the two hosts other than HOST.
others() {
	case $1 in
	1) X1=2 X2=3 ;;
	2) X1=1 X2=3 ;;
	*) X1=1 X2=2 ;;
	esac
}

echo "== monitors a, b, c on hosts 1, 2, 3"
start_mons 3
if ! wait_until 30 agree 1 2 3; then
	show_mons 3
	fail "no quorum within 30 s"
	exit 1
fi
MAJ=$MON_LIST
change_in 1 pool create p0 --size 3 --pg-num 8 || exit 1
HAVE="p0" NOT=""
L=$(leader_host 3)
wait_until 20 agree 1 2 3 || fail "the monitors do not agree after the first change"
show_mons 3

# --- 1. A follower cut off ---------------------------------------------------
others "$L"
C=$X1
M2=$X2 # the other follower; L and M2 are the majority
MAJ="$(mon_addr "$L"),$(mon_addr "$M2")"
E0=$(mon_field "$C" epoch)
echo "== 1. follower mon.$(mon_name "$C") (host $C) cut off (drop); mon.$(mon_name "$L") leads, epoch $E0"
rig cut "$C" --mode drop >/dev/null || exit 1
t_cut=$(now)
if wait_until 15 knows_no_leader "$C"; then
	echo "ok mon.$(mon_name "$C") knows no leader $(since "$t_cut") s after the cut"
else
	fail "mon.$(mon_name "$C") still knows a leader 15 s after the cut: $(mon_status "$C")"
fi
lone_change "$C" lonely1
NOT="lonely1"
for n in pa1 pa2 pa3; do
	change_in "$M2" pool create "$n" --size 3 --pg-num 8 && HAVE="$HAVE $n"
done
E1=$(mon_field "$L" epoch)
if [ "$E1" -ge $((E0 + 3)) ] 2>/dev/null && wait_until 10 epoch_is "$M2" "$E1"; then
	echo "ok the majority committed: epoch $E0 -> $E1 on mon.$(mon_name "$L") and mon.$(mon_name "$M2")"
else
	fail "the majority's epochs: mon.$(mon_name "$L") $E1, mon.$(mon_name "$M2") $(mon_field "$M2" epoch) (from $E0)"
fi
# A monitor serves the committed maps it has, leader or not
# (docs/monitor-quorum.md), and closes its sessions once leaderless for 3 s:
# what a new client gets from the lone one is shown, not checked.
if rig exec "$C" timeout 20 "$MIXSAN" --mon "$(mon_addr "$C")" --json pool ls >"$DIR/out" 2>&1; then
	echo "note: the cut-off monitor still serves its last map to a new client ($(grep -c '"name"' "$DIR/out") pools)"
else
	echo "note: the cut-off monitor serves no map ($(tail -n 1 "$DIR/out"))"
fi
lone_change_failed lonely1
s=$(mon_status "$C")
if [ "$(field "$s" epoch)" = "$E0" ] && [ "$(field "$s" leader_name)" = - ]; then
	echo "ok mon.$(mon_name "$C") stayed at epoch $E0, leaderless: $s"
else
	fail "mon.$(mon_name "$C") while cut off: $s (epoch was $E0)"
fi
rig heal "$C" >/dev/null || exit 1
t_heal=$(now)
caught_up "$C" "$(mon_name "$L")" "$E1" "caught up"

wait_until 10 agree 1 2 3 || fail "the monitors do not agree after the heal"
same_view
show_mons 3

# --- 2. The leader cut off -----------------------------------------------------
L=$(leader_host 3)
others "$L"
O1=$X1
O2=$X2
MAJ="$(mon_addr "$O1"),$(mon_addr "$O2")"
s=$(mon_status "$L")
E0=$(field "$s" epoch)
T0=$(field "$s" term)
echo "== 2. leader mon.$(mon_name "$L") (host $L) cut off (drop) at epoch $E0, term $T0"
rig cut "$L" --mode drop >/dev/null || exit 1
t_cut=$(now)
# At once, while it may still believe it leads: a change sent to it alone.
lone_change "$L" ghost
NOT="$NOT ghost"
NEWL=""
if wait_until 10 new_leader_among "$O1" "$O2" "$L"; then
	echo "ok mon.$(mon_name "$NEWL") elected $(since "$t_cut") s after the cut"
else
	fail "no new leader among hosts $O1 and $O2 10 s after the cut"
	show_mons 3
	raft_sockets
	if wait_until 140 new_leader_among "$O1" "$O2" "$L"; then
		echo "   mon.$(mon_name "$NEWL") elected $(since "$t_cut") s after the cut"
	else
		echo "   no leader 150 s after the cut"
		exit 1
	fi
fi
if wait_until 15 not_leader "$L"; then
	echo "ok the old leader mon.$(mon_name "$L") stepped down within $(since "$t_cut") s of the cut"
else
	fail "mon.$(mon_name "$L") still says it leads 15 s after the cut: $(mon_status "$L")"
fi
for n in pb1 pb2; do
	change_in "$O1" pool create "$n" --size 3 --pg-num 8 && HAVE="$HAVE $n"
done
E1=$(mon_field "$NEWL" epoch)
FOL=$O1
[ "$FOL" != "$NEWL" ] || FOL=$O2
if [ "$E1" -ge $((E0 + 2)) ] 2>/dev/null && wait_until 10 epoch_is "$FOL" "$E1"; then
	echo "ok the majority committed: epoch $E0 -> $E1 on mon.$(mon_name "$O1") and mon.$(mon_name "$O2")"
else
	fail "the majority's epochs: $(mon_field "$O1" epoch) and $(mon_field "$O2" epoch) (from $E0)"
fi
lone_change_failed ghost
s=$(mon_status "$L")
if [ "$(field "$s" epoch)" = "$E0" ] && [ "$(field "$s" role)" != leader ]; then
	echo "ok mon.$(mon_name "$L") stayed at epoch $E0, not leading: $s"
else
	fail "the old leader while cut off: $s (epoch was $E0)"
fi
rig heal "$L" >/dev/null || exit 1
t_heal=$(now)
caught_up "$L" "$(mon_name "$NEWL")" "$E1" "follows mon.$(mon_name "$NEWL") and caught up"

wait_until 10 agree 1 2 3 || fail "the monitors do not agree after the heal"
same_view
show_mons 3

# --- 3. A follower cut from the leader only -------------------------------------
L=$(leader_host 3)
others "$L"
F=$X1
G=$X2
MAJ="$(mon_addr "$L"),$(mon_addr "$G")"
s=$(mon_status "$L")
E0=$(field "$s" epoch)
T0=$(field "$s" term)
echo "== 3. follower mon.$(mon_name "$F") cut from the leader mon.$(mon_name "$L") only (both reach mon.$(mon_name "$G")), epoch $E0, term $T0"
rig cut "$F" --from "$L" >/dev/null || exit 1
t_cut=$(now)
if wait_until 15 knows_no_leader "$F"; then
	echo "ok mon.$(mon_name "$F") knows no leader $(since "$t_cut") s after the cut"
else
	fail "mon.$(mon_name "$F") still knows a leader 15 s after the cut: $(mon_status "$F")"
fi
for n in pc1 pc2; do
	change_in "$G" pool create "$n" --size 3 --pg-num 8 && HAVE="$HAVE $n"
done
sleep 3 # time for the parted follower to campaign, if it would
s=$(mon_status "$L")
E1=$(field "$s" epoch)
if [ "$(field "$s" role)" = leader ] && [ "$(field "$s" term)" = "$T0" ] &&
	[ "$E1" -ge $((E0 + 2)) ] 2>/dev/null && wait_until 10 epoch_is "$G" "$E1"; then
	echo "ok mon.$(mon_name "$L") still leads in term $T0 and committed epoch $E0 -> $E1 with mon.$(mon_name "$G")"
else
	fail "under the partial partition: leader $s; mon.$(mon_name "$G") $(mon_status "$G") (term was $T0, epoch $E0)"
fi
s=$(mon_status "$F")
if [ "$(field "$s" epoch)" = "$E0" ] && [ "$(field "$s" leader_name)" = - ]; then
	echo "ok mon.$(mon_name "$F") stayed at epoch $E0, leaderless: $s"
else
	fail "the parted follower: $s (epoch was $E0)"
fi
rig heal "$F" --from "$L" >/dev/null || exit 1
t_heal=$(now)
caught_up "$F" "$(mon_name "$L")" "$E1" "caught up"

wait_until 10 agree 1 2 3 || fail "the monitors do not agree after the heal"
same_view
show_mons 3

echo "== the monitors stopped"
for n in a b c; do
	stop_daemon "mon.$n" "$DIR/mon.$n.pid"
	check_log "mon.$n" "$DIR/mon.$n.log"
done

if [ "$fails" -ne 0 ]; then
	echo "mon_partition: $fails failed"
	exit 1
fi
echo "mon_partition: ok"
