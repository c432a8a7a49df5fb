# shellcheck shell=sh disable=SC2034 # CEPH_* are for the sourcing script
# Sourced by bench/nbdbench.sh: a Ceph cluster set up by hand beside MixSAN
# for comparison, with the same layout (1 monitor, 3 OSDs, a pool of 3
# replicas with failure domain osd, backing files on the local disk).
# Everything lives in one folder; the daemons listen on 127.0.0.1 only,
# authentication is off, and no cephadm or systemd is involved: each daemon
# runs in the foreground (-f) of a background job whose pid is kept, and
# ceph_down stops exactly those pids.  The facts behind the configuration
# (and the 8 GiB sparse BlueStore files) are in docs/performance.md.
#
# ceph_install   installs Debian's Ceph packages if a tool is missing
# ceph_up DIR    sets up and starts the cluster in DIR, creates pool "bench"
#                and image bench/vol (1 GiB), waits for every PG
#                active+clean; sets CEPH_CONF, CEPH_OSD_PIDS, CEPH_MON_PIDS
#                (the monitor and the mgr)
# ceph_down      stops them (for the exit trap; safe to call twice)
CEPH_PIDS=""
CEPH_OSD_PIDS=""
CEPH_MON_PIDS=""
CEPH_DIR=""

ceph_install() {
	missing=""
	for p in ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra qemu-utils libnbd-bin fio; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	echo "installing Debian's packages for this comparison only:$missing"
	# shellcheck disable=SC2086 # one package a word
	env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null ||
		{ apt-get update -q >/dev/null &&
			env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null; }
}

# ceph_cmd ARGS...: the ceph command line on this cluster, bounded in time.
ceph_cmd() {
	timeout 60 ceph -c "$CEPH_CONF" --connect-timeout 30 "$@"
}

# ceph_start NAME DAEMON ARGS...: DAEMON -f in the background, its output in
# NAME.out, its pid kept.
ceph_start() {
	name=$1
	shift
	"$@" -c "$CEPH_CONF" -f >>"$CEPH_DIR/log/$name.out" 2>&1 &
	CEPH_PIDS="$CEPH_PIDS $!"
	last_pid=$!
}

ceph_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ceph_up() {
	CEPH_DIR=$1
	CEPH_CONF="$CEPH_DIR/ceph.conf"
	mkdir -p "$CEPH_DIR/log" "$CEPH_DIR/run" "$CEPH_DIR/crash" "$CEPH_DIR/mon.a" \
		"$CEPH_DIR/mgr.x"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	p1=$(ceph_free_port)
	p2=$(ceph_free_port)
	addr="[v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]"
	cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon_host = $addr
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $CEPH_DIR/keyring
run_dir = $CEPH_DIR/run
crash_dir = $CEPH_DIR/crash
log_file = $CEPH_DIR/log/\$name.log
admin_socket = $CEPH_DIR/run/\$name.asok
mon_data = $CEPH_DIR/\$name
mgr_data = $CEPH_DIR/\$name
osd_data = $CEPH_DIR/\$name
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_data_avail_warn = 10
mon_allow_pool_delete = true
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 8589934592
rbd_cache = false
EOF
	ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null
	ceph-authtool "$CEPH_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
		--cap osd 'allow *' --cap mgr 'allow *' >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "$addr" "$CEPH_DIR/monmap" >/dev/null
	timeout 120 ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
		--keyring "$CEPH_DIR/keyring" >"$CEPH_DIR/log/mkfs.mon.out" 2>&1
	ceph_start mon.a ceph-mon -i a
	CEPH_MON_PIDS=$last_pid
	ceph_cmd mon stat >/dev/null
	ceph_start mgr.x ceph-mgr -i x
	CEPH_MON_PIDS="$CEPH_MON_PIDS $last_pid"
	for _ in 0 1 2; do
		uuid=$(cat /proc/sys/kernel/random/uuid)
		id=$(ceph_cmd osd new "$uuid")
		mkdir -p "$CEPH_DIR/osd.$id"
		timeout 300 ceph-osd -c "$CEPH_CONF" -i "$id" --mkfs --osd-uuid "$uuid" \
			>"$CEPH_DIR/log/mkfs.osd.$id.out" 2>&1
		ceph_start "osd.$id" ceph-osd -i "$id"
		CEPH_OSD_PIDS="$CEPH_OSD_PIDS $last_pid"
	done
	ceph_cmd osd crush rule create-replicated by-osd default osd >/dev/null 2>&1
	ceph_cmd osd pool create bench 64 64 replicated by-osd >/dev/null 2>&1
	ceph_cmd osd pool set bench size 3 >/dev/null 2>&1
	timeout 120 rbd -c "$CEPH_CONF" pool init bench
	timeout 60 rbd -c "$CEPH_CONF" create bench/vol --size 1G
	ceph_wait_clean
}

# ceph_wait_clean: until 3 OSDs are up and in and every PG is active+clean
# (not just HEALTH_OK), at most 300 s.
ceph_wait_clean() {
	i=0
	while :; do
		if ceph_cmd pg stat -f json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["pg_summary"]
by = {x["name"]: x["num"] for x in s["num_pg_by_state"]}
sys.exit(0 if s["num_pgs"] > 0 and by.get("active+clean", 0) == s["num_pgs"] else 1)' &&
			ceph_cmd osd stat 2>/dev/null | grep -q "3 osds: 3 up.*3 in"; then
			return 0
		fi
		if [ $i -ge 300 ]; then
			echo "Ceph's PGs not active+clean within 300 s:"
			ceph_cmd -s
			return 1
		fi
		sleep 1
		i=$((i + 1))
	done
}

# ceph_down: every daemon started here, with SIGTERM, then SIGKILL after
# 20 s; the BlueStore files are removed (the logs are kept with the folder).
ceph_down() {
	[ -n "$CEPH_PIDS" ] || return 0
	for p in $CEPH_PIDS; do
		kill "$p" 2>/dev/null || :
	done
	i=0
	for p in $CEPH_PIDS; do
		while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$p" 2>/dev/null || :
	done
	for p in $CEPH_PIDS; do
		wait "$p" 2>/dev/null || :
	done
	CEPH_PIDS=""
	rm -f "$CEPH_DIR"/osd.*/block
}
