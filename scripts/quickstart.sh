#!/bin/sh
# Install what is needed, build, start a local MixSAN cluster (1 monitor,
# 3 OSDs, a pool of 3 replicas) under ./mixsan-data, store an object and
# read it back, and print the cluster's status.
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
"$MIXSAN" --data "$DATA" status
cat <<EOT

The cluster keeps running in the background.  Try:
  export MIXSAN_DATA=$DATA
  $MIXSAN osd tree
  $MIXSAN pool ls
  $MIXSAN object put default myobject /etc/hostname
  $MIXSAN object ls default
Stop it with:
  $MIXSAN --data $DATA cluster down
EOT
