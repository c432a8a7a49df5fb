#!/bin/sh
# System test of the mixsan command line: a development cluster brought up
# and down, pools, OSDs and objects, human and --json output, and errors.
set -u
BUILD="${MIXSAN_BUILD_ROOT:?}"
MIXSAN="$BUILD/cli/mixsan"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-cli-XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MIXSAN_DATA="$DATA"
fails=0

ok() { # ok DESCRIPTION COMMAND...: the command must succeed
	d="$1"; shift
	if "$@" >"$DATA/out" 2>"$DATA/err"; then :; else
		echo "FAIL: $d (exit $?)"; cat "$DATA/out" "$DATA/err"; fails=$((fails+1))
	fi
}
bad() { # bad DESCRIPTION PATTERN COMMAND...: must fail, stderr matching PATTERN
	d="$1"; pat="$2"; shift 2
	if "$@" >"$DATA/out" 2>"$DATA/err"; then
		echo "FAIL: $d succeeded"; fails=$((fails+1))
	elif ! grep -q -- "$pat" "$DATA/err"; then
		echo "FAIL: $d: no '$pat' in:"; cat "$DATA/err"; fails=$((fails+1))
	fi
}
has() { # has DESCRIPTION PATTERN: the last output contains PATTERN
	if ! grep -q -- "$2" "$DATA/out"; then
		echo "FAIL: $1: no '$2' in:"; cat "$DATA/out"; fails=$((fails+1))
	fi
}
json() { # json DESCRIPTION PYTHON-EXPR: evaluate EXPR on the last JSON output as j
	if ! python3 -c "import json,sys; j=json.load(open('$DATA/out')); sys.exit(0 if ($2) else 1)"; then
		echo "FAIL: $1: ($2) on:"; cat "$DATA/out"; fails=$((fails+1))
	fi
}
healthy() { # healthy DESCRIPTION: status reaches HEALTH_OK within 60 s
	i=0
	while [ $i -lt 240 ]; do
		if "$MIXSAN" status --json >"$DATA/out" 2>"$DATA/err" &&
			python3 -c "import json,sys; j=json.load(open('$DATA/out')); sys.exit(0 if j['health']['status']=='HEALTH_OK' else 1)"; then
			return
		fi
		sleep 0.25; i=$((i+1))
	done
	echo "FAIL: $1: not HEALTH_OK within 60 s:"; cat "$DATA/out" "$DATA/err"; fails=$((fails+1))
}
cleanup() {
	"$MIXSAN" cluster down >/dev/null 2>&1
	if [ "$fails" = 0 ]; then rm -rf "$DATA"; else echo "kept $DATA"; fi
}
trap cleanup EXIT

ok "cluster up" "$MIXSAN" cluster up --osds 3 --port "$PORT"
has "cluster up says where" "cluster up in"
bad "a second cluster up refuses" "already running" "$MIXSAN" cluster up --port "$PORT"
bad "osd --wal-mib 0" "takes 1 to 65536" "$BUILD/osd/mixsan-osd" --data "$DATA/x" \
	--mon 127.0.0.1:1 --wal-mib 0
bad "osd --wal-mib too large" "takes 1 to 65536" "$BUILD/osd/mixsan-osd" --data "$DATA/x" \
	--mon 127.0.0.1:1 --wal-mib 65537
bad "osd --id not a number" "--id takes 0 to 2147483647, not 'x'" "$BUILD/osd/mixsan-osd" \
	--data "$DATA/x" --mon 127.0.0.1:1 --id x
bad "osd --scrub-interval negative" "--scrub-interval takes 0 to" "$BUILD/osd/mixsan-osd" \
	--data "$DATA/x" --mon 127.0.0.1:1 --scrub-interval -1
bad "osd --recovery-max-active 65" "--recovery-max-active takes 1 to 64" \
	"$BUILD/osd/mixsan-osd" --data "$DATA/x" --mon 127.0.0.1:1 --recovery-max-active 65
bad "osd --heartbeat-grace empty" "--heartbeat-grace takes 1 to 3600000, not ''" \
	"$BUILD/osd/mixsan-osd" --data "$DATA/x" --mon 127.0.0.1:1 --heartbeat-grace ''
healthy "healthy after cluster up"
bad "a second osd on a running osd's folder" "osd.0 is in use by process [1-9]" \
	timeout 30 "$BUILD/osd/mixsan-osd" --data "$DATA/osd.0" --mon "127.0.0.1:$PORT"
bad "a second monitor on a running monitor's folder" "mon is in use by process [1-9]" \
	timeout 30 "$BUILD/mon/mixsan-mon" --data "$DATA/mon" --addr 127.0.0.1:1
ok "status" "$MIXSAN" status
has "status health" "HEALTH_OK"
has "status osds" "3 up"
has "status pgs" "active+clean"
ok "status --json" "$MIXSAN" status --json
json "status json" "j['health']['status']=='HEALTH_OK' and j['osds']['up']==3 and j['epoch']>1 and j['pgs']['clean']==j['pgs']['total']"
ok "status --watch bounded" "$MIXSAN" status --watch --timeout 1
has "watch prints events" "\[INF\] "

ok "osd ls" "$MIXSAN" osd ls
has "osd ls lists osd 2" "^2 "
ok "osd ls --json" "$MIXSAN" osd ls --json
json "osd ls json" "len(j)==3 and all(o['up'] and o['in'] for o in j)"
ok "osd tree" "$MIXSAN" osd tree
has "osd tree root" "root default"
ok "osd tree --json" "$MIXSAN" osd tree --json
json "osd tree json" "j[0]['type']=='root' and j[0]['children'][0]['type']=='host'"

ok "pool create" "$MIXSAN" pool create rbd --size 2 --pg-num 16 --failure-domain osd
ok "pool ls" "$MIXSAN" pool ls
has "pool ls shows rbd" "rbd"
ok "pool ls --json" "$MIXSAN" pool ls --json
json "pool ls json" "sorted(p['name'] for p in j)==['default','rbd'] and [p for p in j if p['name']=='rbd'][0]['size']==2"
ok "pool get" "$MIXSAN" pool get rbd size
has "pool get size" "^2$"
ok "pool get --json" "$MIXSAN" pool get rbd --json
json "pool get json" "j['pg_num']==16 and j['failure_domain']=='osd'"
ok "pool set" "$MIXSAN" pool set rbd size 3
ok "pool get after set" "$MIXSAN" pool get rbd size
has "size is 3" "^3$"
bad "pool set unknown key" "unknown pool setting" "$MIXSAN" pool set rbd colour blue
bad "pool set bad min_size" "min_size must be" "$MIXSAN" pool set rbd min_size 7
bad "pool create duplicate" "already exists" "$MIXSAN" pool create rbd
bad "pool create bad name" "pool name must be" "$MIXSAN" pool create "no/slash"
bad "pool create unknown option" "unknown option" "$MIXSAN" pool create x --colour red
bad "pool rm without confirmation" "yes-i-really-mean-it" "$MIXSAN" pool rm rbd
bad "balancer without confirmation" "backfill" "$MIXSAN" balancer run rbd
ok "balancer run" "$MIXSAN" balancer run rbd --yes-i-really-mean-it --max-deviation 0.2
bad "balancer bad deviation" "max_deviation must be" "$MIXSAN" balancer run --yes-i-really-mean-it --max-deviation 7

head -c 100000 /dev/urandom > "$DATA/blob"
ok "object put" "$MIXSAN" object put rbd blob "$DATA/blob"
ok "object put from stdin" sh -c "echo hi | '$MIXSAN' object put rbd small -"
ok "object get" "$MIXSAN" object get rbd blob "$DATA/blob.out"
ok "object content" cmp "$DATA/blob" "$DATA/blob.out"
ok "object get to stdout" "$MIXSAN" object get rbd small -
has "stdout content" "^hi$"
ok "object stat" "$MIXSAN" object stat rbd blob
has "object stat size" "size 100000"
ok "object stat --json" "$MIXSAN" object stat rbd blob --json
json "object stat json" "j['size']==100000"
ok "object ls" "$MIXSAN" object ls rbd
has "object ls blob" "^blob$"
ok "object ls --json" "$MIXSAN" object ls rbd --json
json "object ls json" "sorted(o['name'] for o in j)==['blob','small']"
ok "object locate --json" "$MIXSAN" object locate rbd blob --json
json "object locate json" "len(j['acting'])==3 and j['primary']==j['acting'][0]"
healthy "health before pg ls"
sleep 2 # a statistics report (every second) counts the objects just written
ok "pg ls" "$MIXSAN" pg ls rbd
has "pg ls header" "^PG  *STATE"
has "pg ls active+clean" "active+clean"
ok "pg ls --json" "$MIXSAN" pg ls rbd --json
json "pg ls json" "len(j)==16 and sum(p['objects'] for p in j)==2 and all(p['state']=='active+clean' for p in j)"
ok "pg ls --state" "$MIXSAN" pg ls --state peering --json
json "pg ls filtered" "j==[]"
bad "pg ls missing pool" "no such pool" "$MIXSAN" pg ls nopool
ok "object rm" "$MIXSAN" object rm rbd blob
bad "object get removed" "No such file" "$MIXSAN" object get rbd blob -
bad "object rm missing" "No such file" "$MIXSAN" object rm rbd blob
bad "object in missing pool" "no such pool" "$MIXSAN" object ls nopool

ok "osd out" "$MIXSAN" osd out 2
ok "osd ls after out" "$MIXSAN" osd ls --json
json "osd 2 out" "[o for o in j if o['id']==2][0]['in']==False"
ok "osd in" "$MIXSAN" osd in 2
ok "osd reweight" "$MIXSAN" osd reweight 1 2.5
ok "osd ls after reweight" "$MIXSAN" osd ls --json
json "osd 1 weight" "abs([o for o in j if o['id']==1][0]['weight']-2.5)<0.001"
bad "osd out of a missing osd" "does not exist" "$MIXSAN" osd out 42
ok "object get after map changes" "$MIXSAN" object get rbd small -
has "still readable" "^hi$"

# Cache tiers (docs/cache-tiering.md): the commands and the map, an object
# through a writeback tier, and a removal that drains it.  rbd still holds an
# object.
ok "pool create cold" "$MIXSAN" pool create cold --size 2 --pg-num 8 --failure-domain osd
ok "pool create hot" "$MIXSAN" pool create hot --size 2 --pg-num 8 --failure-domain osd
healthy "the new pools' PGs report"
bad "tier add of a pool with an object" "holds 1 object" "$MIXSAN" pool tier add cold rbd
bad "tier add of a pool with an object, forced" "must be empty" \
	"$MIXSAN" pool tier add cold rbd --yes-i-really-mean-it
bad "tier add of a pool to itself" "cannot be a cache tier of itself" \
	"$MIXSAN" pool tier add hot hot
bad "tier add of a missing pool" "no such pool 'nope'" "$MIXSAN" pool tier add cold nope
bad "tier add without a cache" "usage: pool tier add BASE CACHE" "$MIXSAN" pool tier add cold
bad "pool set of a cache setting on a pool that is no cache" "not one" \
	"$MIXSAN" pool set hot promote_min_hits 3
ok "tier add" "$MIXSAN" pool tier add cold hot
has "tier add says so" "is now the cache tier of 'cold'"
bad "a second tier of a base" "already has the cache tier 'hot'" \
	"$MIXSAN" pool tier add cold default --yes-i-really-mean-it
bad "a tier of a cache" "do not stack" "$MIXSAN" pool tier add hot default --yes-i-really-mean-it
bad "a base as a cache" "base pool cannot be a cache" \
	"$MIXSAN" pool tier add default cold --yes-i-really-mean-it
ok "pool ls with a tier" "$MIXSAN" pool ls
has "pool ls header" "TIER$"
has "pool ls shows the cache" "hot .*cache of cold, none$"
has "pool ls shows the base" "cold .*tier: hot$"
ok "pool ls --json with a tier" "$MIXSAN" pool ls --json
json "tier links and defaults in json" "(lambda p: p['hot']['tier_of']==p['cold']['id'] and p['cold']['tier']==p['hot']['id'] and p['hot']['tier']==-1 and p['cold']['tier_of']==-1 and p['hot']['cache_mode']=='none' and p['hot']['cache_target_dirty_ratio']==0.4 and p['hot']['cache_target_full_ratio']==0.8 and p['hot']['promote_min_hits']==2 and p['hot']['hit_period_s']==60 and p['hot']['target_max_bytes']==0 and p['hot']['flush_all']==False)({p['name']: p for p in j})"
ok "pool set target_max_bytes" "$MIXSAN" pool set hot target_max_bytes 1073741824
ok "pool set target_max_objects" "$MIXSAN" pool set hot target_max_objects 100000
ok "pool set cache_target_dirty_ratio" "$MIXSAN" pool set hot cache_target_dirty_ratio 0.5
ok "pool set cache_target_full_ratio" "$MIXSAN" pool set hot cache_target_full_ratio 0.75
ok "pool set promote_min_hits" "$MIXSAN" pool set hot promote_min_hits 3
ok "pool set hit_period_s" "$MIXSAN" pool set hot hit_period_s 120
bad "dirty ratio above full" "must not exceed cache_target_full_ratio (0.75)" \
	"$MIXSAN" pool set hot cache_target_dirty_ratio 0.8
bad "full ratio above 1" "ratio from 0 to 1" "$MIXSAN" pool set hot cache_target_full_ratio 1.5
bad "promote_min_hits 0" "promote_min_hits must be 1 to 16" \
	"$MIXSAN" pool set hot promote_min_hits 0
bad "hit_period_s too long" "hit_period_s must be 1 to 3600" \
	"$MIXSAN" pool set hot hit_period_s 4000
bad "target_max_bytes not a number" "whole number" "$MIXSAN" pool set hot target_max_bytes 1G
bad "cache settings only on a cache" "not one" "$MIXSAN" pool set cold target_max_bytes 1
bad "cache_mode by pool set" "pool tier commands" "$MIXSAN" pool set hot cache_mode writeback
ok "pool get a ratio" "$MIXSAN" pool get hot cache_target_dirty_ratio
has "the ratio as set" "^0.5$"
ok "pool get --json with the settings" "$MIXSAN" pool get hot --json
json "settings in json" "j['target_max_bytes']==1073741824 and j['target_max_objects']==100000 and j['cache_target_full_ratio']==0.75 and j['promote_min_hits']==3 and j['hit_period_s']==120"
bad "tier mode of a base" "not a cache tier" "$MIXSAN" pool tier mode cold writeback
bad "tier mode unknown" "cache mode must be writeback, readonly or none" \
	"$MIXSAN" pool tier mode hot sideways
ok "tier mode writeback" "$MIXSAN" pool tier mode hot writeback
ok "object put through a writeback tier" sh -c "echo tiered | '$MIXSAN' object put cold tobj -"
ok "pool ls in writeback" "$MIXSAN" pool ls
has "pool ls shows writeback" "hot .*cache of cold, writeback$"
bad "writeback to readonly" "set mode none first" "$MIXSAN" pool tier mode hot readonly
bad "pool rm of a cache" "remove the tier first (pool tier rm cold hot)" \
	"$MIXSAN" pool rm hot --yes-i-really-mean-it
bad "pool rm of a base" "remove the tier first (pool tier rm cold hot)" \
	"$MIXSAN" pool rm cold --yes-i-really-mean-it
ok "tier mode none" "$MIXSAN" pool tier mode hot none
has "leaving writeback flushes all" "flushed to the base"
ok "pool ls --json after writeback" "$MIXSAN" pool ls --json
json "flush_all after writeback" "[p for p in j if p['name']=='hot'][0]['flush_all']==True and [p for p in j if p['name']=='hot'][0]['cache_mode']=='none'"
bad "readonly while a flush of all is pending" "flush of all is pending" \
	"$MIXSAN" pool tier mode hot readonly
bad "tier rm of the wrong pair" "is not the cache tier of 'rbd'" "$MIXSAN" pool tier rm rbd hot
ok "tier rm waits until the cache is drained, then removes it" \
	"$MIXSAN" pool tier rm cold hot --timeout 30
has "tier rm says so" "no longer the cache tier of 'cold'"
has "tier rm empties the former cache" "removed the 1 stubs left in the former cache"
ok "the object flushed to the base" "$MIXSAN" object get cold tobj -
has "its content" "^tiered$"
ok "pool ls --json after tier rm" "$MIXSAN" pool ls --json
json "links gone" "all(p['tier']==-1 and p['tier_of']==-1 and p['cache_mode']=='none' and not p['flush_all'] for p in j)"
bad "tier rm again" "is not the cache tier" "$MIXSAN" pool tier rm cold hot
ok "status --watch shows the tier events" "$MIXSAN" status --watch --timeout 1
has "tier added in the log" "pool 'hot' is now the cache tier of 'cold'"
has "mode change in the log" "pool 'hot': cache mode writeback -> none"
ok "pool rm of a former cache" "$MIXSAN" pool rm hot --yes-i-really-mean-it
ok "pool rm of a former base" "$MIXSAN" pool rm cold --yes-i-really-mean-it

ok "pool rm" "$MIXSAN" pool rm rbd --yes-i-really-mean-it
ok "pool ls after rm" "$MIXSAN" pool ls --json
json "rbd gone" "[p['name'] for p in j]==['default']"

ok "cluster down" "$MIXSAN" cluster down
has "cluster down count" "4 daemons"
bad "status with the cluster down" "cannot reach" env MIXSAN_MON=127.0.0.1:$PORT "$MIXSAN" status
# The cluster comes back with its data, its OSDs given options: a log of
# 1 MiB checkpoints after each 3 MB put (one frame each), where the default
# log of 256 MiB does not.
grep -h "object store closing" "$DATA"/log/osd.*.log >"$DATA/closing1"
ok "cluster up again, with OSD options" "$MIXSAN" cluster up --osds 3 --port "$PORT" \
	--osd-args "--wal-mib 1 --log-level info"
healthy "healthy after restart"
head -c 3000000 /dev/urandom > "$DATA/big"
ok "object put 3 MB" "$MIXSAN" object put default big1 "$DATA/big"
ok "object put 3 MB again" "$MIXSAN" object put default big2 "$DATA/big"
bad "--osd-args with too many words" "at most 16 words" "$MIXSAN" cluster up \
	--osd-args "$(printf -- '-x %.0s' $(seq 17))"
bad "--osd-args too long" "too long" "$MIXSAN" cluster up \
	--osd-args "$(head -c 1100 /dev/zero | tr '\0' x)"
ok "cluster down before the quorum" "$MIXSAN" cluster down
ckpts() { # the largest checkpoint count of the OSDs' closing lines in FILE
	sed -n 's/.*, \([0-9]*\) checkpoints.*/\1/p' "$1" | sort -n | tail -1
}
grep -h "object store closing" "$DATA"/log/osd.*.log | grep -vxFf "$DATA/closing1" \
	>"$DATA/closing2"
c1=$(ckpts "$DATA/closing1") c2=$(ckpts "$DATA/closing2")
if [ "${c1:-0}" -lt 1 ] || [ "${c1:-0}" -gt 2 ] || [ "${c2:-0}" -lt 3 ]; then
	echo "FAIL: --wal-mib 1 through --osd-args: checkpoints ${c1:-none} by default," \
		"${c2:-none} with it (want 1 or 2, then 3 or more: one a put)"
	cat "$DATA/closing1" "$DATA/closing2"
	fails=$((fails + 1))
else
	echo "ok: --wal-mib 1 through --osd-args: $c1 checkpoints by default, $c2 with it"
fi

# A monitor key, and a quorum of three with keys: its Raft links use the key
# that cluster up makes (docs/monitor-quorum.md, "The Raft link").
ok "auth mon-key" "$MIXSAN" auth mon-key "$DATA/mon.key"
has "auth mon-key says where" "$DATA/mon.key"
[ "$(stat -c %a "$DATA/mon.key")" = 600 ] || { echo "FAIL: mon.key not 0600"; fails=$((fails+1)); }
bad "auth mon-key keeps a key" "exists already" "$MIXSAN" auth mon-key "$DATA/mon.key"
export MIXSAN_DATA="$DATA/quorum"
ok "cluster up --mons 3 --auth" "$MIXSAN" cluster up --osds 3 --mons 3 --auth --port "$PORT"
healthy "a quorum with keys is healthy"
[ "$(stat -c %a "$MIXSAN_DATA/mon.key")" = 600 ] || { echo "FAIL: cluster mon.key not 0600"; fails=$((fails+1)); }
ok "object put through the quorum" "$MIXSAN" object put default q "$DATA/blob"
ok "object get through the quorum" "$MIXSAN" object get default q "$DATA/q.out"
ok "object content through the quorum" cmp "$DATA/blob" "$DATA/q.out"
if grep -l "raft: refused" "$MIXSAN_DATA"/log/mon.*.log; then
	echo "FAIL: a monitor refused another's Raft link"; fails=$((fails+1))
fi

echo "cli: $fails failures"
[ "$fails" = 0 ]
