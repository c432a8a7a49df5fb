#!/bin/sh
# A whole host cut off under load (docs/testing.md, "The multi-host rig"):
# hosts 1 to 3 of a rig each run a monitor and two OSDs (location host=hN),
# host 4 is the client.  modelcheck runs in host 4 against this cluster
# (MIXSAN_TEST_MON, --actions none: it disrupts nothing itself) with its
# pool of 3 replicas, min_size 2, failure domain host, and checks every
# read against its model.  Meanwhile the host of the leading monitor is
# cut off (link down) for CUT_S seconds, so a monitor election and the loss
# of two OSDs come together, then healed.  It shows:
#  - I/O carries on while the host is cut off: no request fails, and the
#    longest time without any reply is shorter than the cut (printed);
#  - every acknowledged write reads back, the listing matches the model,
#    the cluster returns to HEALTH_OK with every PG active+clean and the
#    deep scrub of every PG finds its copies identical (modelcheck's final
#    checks, which must all pass);
#  - `mixsan status` shows HEALTH_OK within 3 minutes of the heal, and
#    every daemon stops cleanly with no error in its log.
# Skipped (77) when not root or where the rig cannot be built.  Every wait
# is bounded; the folder (every daemon's log, modelcheck's output) is kept
# on failure.  Only the rig's addresses are contacted.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
P="mxhc$$-"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

CUT_S=20     # seconds the host stays cut off
BEFORE_S=15  # seconds of load before the cut
LOAD_S=80    # modelcheck's load, in all
MODELCHECK="$BUILD/tests/system/modelcheck"
[ -x "$MODELCHECK" ] || {
	echo "host_cut: $MODELCHECK is not built: skipped"
	exit 77
}

rig_init host_cut 4

# osd_up_count: OSDs up in the map, asked from host 4.
osd_up_count() {
	mixsan_in 4 --mon "$MON_LIST" --json osd ls 2>/dev/null | grep -c '"up": true'
}

osds_up() {
	[ "$(osd_up_count)" = "$1" ]
}

health_ok() {
	mixsan_in 4 --mon "$MON_LIST" status >"$DIR/status" 2>&1 &&
		grep -q "health: HEALTH_OK" "$DIR/status"
}

# mc_line PATTERN: modelcheck printed a line with PATTERN.
mc_line() {
	grep -q -e "$1" "$DIR/modelcheck.log"
}

echo "== monitors a, b, c and two OSDs each on hosts 1, 2, 3; the client on host 4"
start_mons 3
if ! wait_until 30 agree 1 2 3; then
	show_mons 3
	fail "no quorum within 30 s"
	exit 1
fi
for h in 1 2 3; do
	for k in 1 2; do
		sh "$RIG" --prefix "$P" exec "$h" "$OSD_BIN" --data "$DIR/osd.h$h.$k" \
			--mon "$MON_LIST" --addr "$(rig addr "$h"):0" --location "host=h$h" \
			>>"$DIR/osd.h$h.$k.log" 2>&1 &
		echo $! >"$DIR/osd.h$h.$k.pid"
	done
done
if ! wait_until 60 osds_up 6; then
	fail "$(osd_up_count) of 6 OSDs up after 60 s"
	exit 1
fi
echo "ok 6 OSDs up"

echo "== modelcheck in host 4 for $LOAD_S s"
t_start=$(now)
MIXSAN_TEST_MON="$MON_LIST" timeout 600 sh "$RIG" --prefix "$P" exec 4 "$MODELCHECK" \
	--actions none --failure-domain host --seconds "$LOAD_S" \
	>"$DIR/modelcheck.log" 2>&1 &
mc_pid=$!
if ! wait_until 60 mc_line "requests done"; then
	fail "modelcheck did not start its load within 60 s"
	cat "$DIR/modelcheck.log"
	exit 1
fi
pool=$(mixsan_in 4 --mon "$MON_LIST" --json pool get modelcheck 2>&1)
for kv in '"size": 3' '"min_size": 2' '"failure_domain": "host"'; do
	echo "$pool" | grep -q "$kv" || fail "the pool is not as meant ($kv): $pool"
done
sleep "$BEFORE_S"

L=$(leader_host 3)
if [ -z "$L" ]; then
	fail "no monitor leads before the cut"
	show_mons 3
	exit 1
fi
echo "== host $L (mon.$(mon_name "$L"), the leader, and 2 OSDs) cut off (link) for $CUT_S s"
rig cut "$L" --mode link >/dev/null || exit 1
t_cut=$(now)
w_cut=$(date +%T.%3N)
o=$(awk -v a="$t_start" -v b="$t_cut" 'BEGIN { printf "%.1f", b - a }')
sleep "$CUT_S"
rig heal "$L" >/dev/null || exit 1
t_heal=$(now)
w_heal=$(date +%T.%3N)
echo "   cut at $w_cut, healed at $w_heal: t=$o to t=$(awk -v a="$t_start" -v b="$t_heal" 'BEGIN { printf "%.1f", b - a }') s of modelcheck's clock"

echo "== waiting for modelcheck (load, final pass, health, deep scrub)"
mc_done() {
	! kill -0 "$mc_pid" 2>/dev/null
}
if ! wait_until 480 mc_done; then
	fail "modelcheck did not end within 480 s"
	kill -TERM "$mc_pid" 2>/dev/null
fi
wait "$mc_pid"
mc_rc=$?
grep -e "thrash: map epoch" -e "PROBLEM" -e "health after" -e "deep scrub of" \
	-e "requests (errors)" -e "requests in" -e "longest time" -e "writes acknowledged" \
	-e "problems:" -e "PASS" -e "FAIL" "$DIR/modelcheck.log" | sed 's/^/   /'
if [ "$mc_rc" = 0 ] && mc_line "modelcheck: PASS"; then
	echo "ok modelcheck passed"
else
	fail "modelcheck exited with $mc_rc (output in $DIR/modelcheck.log)"
fi
gap=$(sed -n 's/.*longest time without any reply during the load: \([0-9.]*\) s.*/\1/p' "$DIR/modelcheck.log")
if [ -n "$gap" ] && awk -v g="$gap" -v c="$CUT_S" 'BEGIN { exit !(g < c) }'; then
	echo "ok I/O carried on while the host was cut off: the longest time without a reply was $gap s (the cut lasted $CUT_S s)"
else
	fail "the longest time without a reply was ${gap:-unknown} s, the cut lasted $CUT_S s"
fi

if wait_until 180 health_ok; then
	echo "ok HEALTH_OK $(since "$t_heal") s after the heal"
else
	fail "no HEALTH_OK 180 s after the heal: $(cat "$DIR/status")"
fi
echo "   what the monitors did from the cut on (cut $w_cut, healed $w_heal):"
cat "$DIR"/mon.?.log | awk -v t="$w_cut" '$2 >= t' |
	grep -e "leading the quorum" -e "marked down" -e "booted" | sort -k2 | sed 's/^/     /'

echo "== every daemon stopped"
for h in 1 2 3; do
	for k in 1 2; do
		stop_daemon "osd on host $h ($k)" "$DIR/osd.h$h.$k.pid"
		check_log "osd on host $h ($k)" "$DIR/osd.h$h.$k.log"
	done
done
for n in a b c; do
	stop_daemon "mon.$n" "$DIR/mon.$n.pid"
	check_log "mon.$n" "$DIR/mon.$n.log"
done

if [ "$fails" -ne 0 ]; then
	echo "host_cut: $fails failed"
	exit 1
fi
echo "host_cut: ok"
