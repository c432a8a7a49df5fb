#!/bin/sh
# Install what is needed, build, start a local MixSAN cluster (1 monitor,
# 3 OSDs, a pool of 3 replicas) under ./mixsan-data, store an object and
# read it back, make a thin 10 GiB volume (a VM disk) and write a file
# through it, and print the cluster's status.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
MIXSAN="$PWD/build/cli/mixsan"
DATA="${MIXSAN_DATA:-$PWD/mixsan-data}"

if [ -f "$DATA/mixsan.conf" ] && "$MIXSAN" --data "$DATA" status >/dev/null 2>&1; then
	echo "A MixSAN cluster is already running in $DATA."
else
	"$MIXSAN" --data "$DATA" cluster up --osds 3
fi
echo "hello from MixSAN, $(date -u)" > "$DATA/hello.txt"
"$MIXSAN" --data "$DATA" object put default hello "$DATA/hello.txt"
"$MIXSAN" --data "$DATA" object get default hello "$DATA/hello.out"
cmp "$DATA/hello.txt" "$DATA/hello.out"
echo "stored and read back object 'hello':"
"$MIXSAN" --data "$DATA" object stat default hello
"$MIXSAN" --data "$DATA" object locate default hello
echo
if ! "$MIXSAN" --data "$DATA" volume info default/disk0 >/dev/null 2>&1; then
	"$MIXSAN" --data "$DATA" volume create default/disk0 --size 10G
fi
"$MIXSAN" --data "$DATA" volume rm default/hello-disk >/dev/null 2>&1 || true
"$MIXSAN" --data "$DATA" volume import "$DATA/hello.txt" default/hello-disk
"$MIXSAN" --data "$DATA" volume export default/hello-disk "$DATA/hello-disk.out"
cmp "$DATA/hello.txt" "$DATA/hello-disk.out"
echo "volumes (thin: only written objects take room):"
"$MIXSAN" --data "$DATA" volume du default
echo
"$MIXSAN" --data "$DATA" status
cat <<EOT

The cluster keeps running in the background.  Try:
  export MIXSAN_DATA=$DATA
  $MIXSAN osd tree
  $MIXSAN pool ls
  $MIXSAN object put default myobject /etc/hostname
  $MIXSAN object ls default
  $MIXSAN volume info default/disk0
  nbdkit $PWD/build/nbd/nbdkit-mixsan-plugin.so mon=\$(sed -n 's/^mon = //p' $DATA/mixsan.conf) pool=default -U /tmp/mixsan.sock
  qemu-img info 'nbd+unix:///disk0?socket=/tmp/mixsan.sock'
Stop it with:
  $MIXSAN --data $DATA cluster down
EOT
