#!/bin/sh
# Volume I/O through the NBD export: a development cluster (1 monitor,
# 3 OSDs on the local disk, a pool of 3 replicas), a 1 GiB volume of which
# 256 MiB are written first, nbdkit-mixsan-plugin on a unix socket, and
# fio's nbd engine running each job for SECONDS after a 2 s ramp, write
# jobs ending with a flush (fio's end_fsync).  CACHE is the export's cache
# mode (docs/cache-modes.md): writethrough (the default: every write is
# durable on all three replicas before it is acknowledged), writeback or
# none (acknowledged once logged on all three; the flush makes it durable).
#   bench/nbdbench.sh BUILD_DIR [SECONDS] [CACHE]
# Prints one line per job: IOPS, MiB/s, mean and p99 latency.
set -eu
BUILD=$(cd "$1" && pwd)
SECS=${2:-10}
CACHE=${3:-writethrough}
HERE=$(cd "$(dirname "$0")" && pwd)
MIXSAN="$BUILD/cli/mixsan"
PLUGIN="$BUILD/nbd/nbdkit-mixsan-plugin.so"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-nbdbench-XXXXXX")
fails=0
# shellcheck source=../tests/nbd/lib.sh
. "$HERE/../tests/nbd/lib.sh"
trap mx_cleanup EXIT

mx_cluster_up
"$MIXSAN" pool create bench --size 3 --pg-num 64 --failure-domain osd >/dev/null
"$MIXSAN" volume create bench/vol --size 1G >/dev/null
nbd_serve nbd -U "$DIR/nbd.sock" "$PLUGIN" "mon=$MON" pool=bench volume=vol "cache=$CACHE"
URI="nbd+unix:///?socket=$DIR/nbd.sock"

fio --name=prefill --ioengine=nbd --uri="$URI" --rw=write --bs=1M --size=256M \
	--iodepth=4 --output="$DIR/prefill.json" --output-format=json >/dev/null

echo "cache mode: $CACHE; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %10s %10s %10s %10s\n' "job" "IOPS" "MiB/s" "mean ms" "p99 ms"
run() { # run NAME RW BS QD
	fsync=0
	case $2 in *write*) fsync=1 ;; esac
	fio --name="$1" --ioengine=nbd --uri="$URI" --rw="$2" --bs="$3" --iodepth="$4" \
		--size=256M --time_based --runtime="$SECS" --ramp_time=2 --end_fsync=$fsync \
		--output="$DIR/$1.json" --output-format=json >/dev/null
	python3 - "$DIR/$1.json" "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
lat = d["clat_ns"]
p99 = lat.get("percentile", {}).get("99.000000", 0)
print("%-28s %10.0f %10.1f %10.3f %10.3f" % (sys.argv[2], d["iops"], d["bw"] / 1024.0,
      lat["mean"] / 1e6, p99 / 1e6))
EOF
}
run "4k randwrite QD1" randwrite 4k 1
run "4k randread QD1" randread 4k 1
run "4k randwrite QD32" randwrite 4k 32
run "4k randread QD32" randread 4k 32
run "1M write QD4" write 1M 4
run "1M read QD4" read 1M 4
printf 'peak RSS per OSD (KiB):'
for f in "$MIXSAN_DATA"/run/osd.*.pid; do
	printf ' %s' "$(grep VmHWM "/proc/$(cat "$f")/status" | awk '{print $2}')"
done
printf '\nnbdkit peak RSS (KiB): %s\n' "$(grep VmHWM "/proc/$(cat "$DIR/nbd.pid")/status" | awk '{print $2}')"
