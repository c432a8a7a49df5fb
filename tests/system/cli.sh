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
healthy "healthy after cluster up"
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

ok "pool rm" "$MIXSAN" pool rm rbd --yes-i-really-mean-it
ok "pool ls after rm" "$MIXSAN" pool ls --json
json "rbd gone" "[p['name'] for p in j]==['default']"

ok "cluster down" "$MIXSAN" cluster down
has "cluster down count" "4 daemons"
bad "status with the cluster down" "cannot reach" env MIXSAN_MON=127.0.0.1:$PORT "$MIXSAN" status
# The cluster comes back with its data.
ok "cluster up again" "$MIXSAN" cluster up --osds 3 --port "$PORT"
healthy "healthy after restart"
ok "cluster down before the quorum" "$MIXSAN" cluster down

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
