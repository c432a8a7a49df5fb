#!/bin/sh
# Self-test of the multi-host rig (scripts/rig.sh, docs/testing.md, "The
# multi-host rig").  Builds a rig of 3 hosts under a prefix of its own and
# checks, with ping and with TCP (a Python HTTP server in host 2 and a
# Python client), that every host reaches every other; that a host cut off
# at its link, or by dropping its packets, is unreachable while the others
# still reach each other, and reachable again once healed; that a pair cut
# from each other cannot talk while each still reaches the third; that the
# prefix cannot be taken twice; that a second rig with another subnet lives
# beside the first; and that down kills the rig's processes and leaves no
# namespace behind.  Only the rig's own addresses are ever contacted.
#
# Skipped (77) when not root, when a tool is missing, or where network
# namespaces cannot be made.  Every step is bounded in time.
set -u
RIG="$(cd "$(dirname "$0")/../../scripts" && pwd)/rig.sh"
P="mxt$$-"  # this run's rig
P2="mxu$$-" # the second rig, beside it
fails=0

if [ "$(id -u)" != 0 ]; then
	echo "rig_selftest: not root: skipped"
	exit 77
fi
for t in ip nft ping python3 timeout; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "rig_selftest: $t is not installed: skipped"
		exit 77
	fi
done
if ! ip netns add "${P}probe" 2>/dev/null; then
	echo "rig_selftest: cannot make a network namespace: skipped"
	exit 77
fi
ip netns del "${P}probe"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mixsan-rig-XXXXXX")
server=""

cleanup() {
	sh "$RIG" down --prefix "$P" >/dev/null 2>&1
	sh "$RIG" down --prefix "$P2" >/dev/null 2>&1
	[ -z "$server" ] || kill "$server" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

rig() {
	timeout 20 sh "$RIG" --prefix "$P" "$@"
}

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# ping_ok FROM TO: one ping from host FROM to host TO's address answered.
ping_ok() {
	rig exec "$1" ping -c1 -W1 -q "$(rig addr "$2")" >/dev/null 2>&1
}

# reach FROM TO: host TO answers host FROM within 5 tries (a healed link
# may take a moment, for ARP).
reach() {
	i=0
	while [ $i -lt 5 ]; do
		ping_ok "$1" "$2" && return 0
		i=$((i + 1))
	done
	fail "host $1 cannot ping host $2"
	return 1
}

# noreach FROM TO: host TO does not answer host FROM.
noreach() {
	if ping_ok "$1" "$2"; then
		fail "host $1 still pings host $2"
		return 1
	fi
}

# The HTTP client: fetches a URL with no proxy (the rig's addresses only),
# prints the body.
FETCH='import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
sys.stdout.write(opener.open(sys.argv[1], timeout=float(sys.argv[2])).read().decode())'

# fetch FROM: the token file from host 2's server, fetched in host FROM.
fetch() {
	rig exec "$1" python3 -c "$FETCH" "http://$(rig addr 2):8080/token" 2 2>/dev/null
}

tcp_ok() {
	[ "$(fetch "$1")" = "$token" ] || {
		fail "host $1 cannot fetch from host 2's server over TCP"
		return 1
	}
}

tcp_fails() {
	if [ -n "$(fetch "$1")" ]; then
		fail "host $1 still fetches from host 2's server over TCP"
		return 1
	fi
}

# state HOST WORDS: the status line of host HOST shows that cut state.
state() {
	h=$1
	shift
	line=$(rig status | awk -v h="$h" '$1 == h')
	case $line in
	*" $*"*) ;;
	*) fail "status of host $h is not '$*': $line" ;;
	esac
}

echo "== up 3 (prefix $P)"
if ! rig up 3; then
	echo "FAIL: rig.sh up 3"
	exit 1
fi
if [ "$(rig addr 1)" != 10.77.0.1 ] || [ "$(rig addr 3)" != 10.77.0.3 ]; then
	fail "addresses: host 1 $(rig addr 1), host 3 $(rig addr 3)"
fi
if rig up 3 >/dev/null 2>&1; then
	fail "a second up with prefix $P was not refused"
fi
# shellcheck disable=SC2016 # expanded in host 2
[ "$(rig exec 2 sh -c 'echo $MIXSAN_RIG_HOST $MIXSAN_RIG_ADDR')" = "2 10.77.0.2" ] ||
	fail "exec does not set MIXSAN_RIG_HOST and MIXSAN_RIG_ADDR"
rig exec 1 ping -c1 -W1 -q 127.0.0.1 >/dev/null 2>&1 || fail "loopback of host 1 is not up"

echo "== every host reaches every other"
for a in 1 2 3; do
	for b in 1 2 3; do
		[ "$a" = "$b" ] || reach "$a" "$b"
	done
done

echo "== TCP: an HTTP server in host 2, fetched from host 1"
token="rig-$$-$(date +%s)"
echo "$token" >"$DIR/token"
token=$(cat "$DIR/token")
# Not under timeout: $! is then the server itself (rig.sh exec execs it).
sh "$RIG" --prefix "$P" exec 2 python3 -m http.server --bind "$(rig addr 2)" \
	--directory "$DIR" 8080 >"$DIR/server.log" 2>&1 &
server=$!
i=0
until [ "$(fetch 2)" = "$token" ]; do
	i=$((i + 1))
	if [ $i -ge 50 ]; then
		fail "the HTTP server in host 2 did not answer within 10 s"
		cat "$DIR/server.log"
		exit 1
	fi
	sleep 0.2
done
tcp_ok 1
tcp_ok 3

echo "== cut 3 (link): host 3 unreachable, 1 and 2 still talk"
rig cut 3 --mode link
state 3 link
noreach 1 3
noreach 3 2
reach 1 2
rig heal 3
state 3 none
reach 1 3
reach 3 2

echo "== cut 2 (drop): host 2 unreachable, 1 and 3 still talk"
rig cut 2 --mode drop
state 2 drop
noreach 1 2
noreach 2 3
reach 1 3
ping_ok 2 2 || fail "host 2 cut by drop cannot reach its own address over loopback"
tcp_fails 1
rig heal 2
state 2 none
reach 1 2
reach 2 3
tcp_ok 1

echo "== cut 1 --from 2: 1 and 2 apart, each still reaches 3"
rig cut 1 --from 2
state 1 from:h2
noreach 1 2
noreach 2 1
reach 1 3
reach 3 1
reach 2 3
tcp_fails 1
tcp_ok 3
rig heal 1 --from 2
state 1 none
reach 1 2
reach 2 1
tcp_ok 1

echo "== heal all"
rig cut 1 --from 3
rig cut 2 --mode drop
rig cut 3 --mode link
rig heal all
for h in 1 2 3; do
	state "$h" none
done
reach 1 2
reach 2 3
reach 3 1

echo "== a second rig beside it (prefix $P2, subnet 10.78.9)"
if timeout 20 sh "$RIG" up 2 --prefix "$P2" --subnet 10.78.9; then
	[ "$(timeout 20 sh "$RIG" addr 2 --prefix "$P2")" = 10.78.9.2 ] ||
		fail "--subnet 10.78.9: host 2 has $(timeout 20 sh "$RIG" addr 2 --prefix "$P2")"
	timeout 20 sh "$RIG" exec --prefix "$P2" 1 ping -c1 -W1 -q 10.78.9.2 >/dev/null 2>&1 ||
		fail "host 1 of the second rig cannot ping its host 2"
	timeout 20 sh "$RIG" down --prefix "$P2" || fail "down of the second rig"
	reach 1 2 # the first rig untouched
else
	fail "rig.sh up 2 --prefix $P2 --subnet 10.78.9"
fi

echo "== down: the server killed, no namespace left"
rig status
rig down || fail "rig.sh down"
# The server is this shell's child: gone once it is a zombie or reaped.
i=0
while kill -0 "$server" 2>/dev/null &&
	[ "$(awk '{ print $3 }' "/proc/$server/stat" 2>/dev/null)" != Z ]; do
	i=$((i + 1))
	if [ $i -ge 50 ]; then
		fail "the server in host 2 (pid $server) is alive after down"
		break
	fi
	sleep 0.1
done
wait "$server" 2>/dev/null
server=""
left=$(ip netns list | awk -v p="$P" -v q="$P2" 'index($1, p) == 1 || index($1, q) == 1 { print $1 }')
[ -z "$left" ] || fail "namespaces left after down: $left"
rig down >/dev/null || fail "rig.sh down with nothing to remove"

if [ "$fails" -ne 0 ]; then
	echo "rig_selftest: $fails failed"
	exit 1
fi
echo "rig_selftest: ok"
