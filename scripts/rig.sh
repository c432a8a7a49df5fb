#!/bin/sh
# The multi-host test rig: N "hosts" on one machine, each a Linux network
# namespace with its own loopback and one Ethernet link (eth0) to a switch,
# a bridge that lives in a namespace of its own.  Nothing is added to the
# root namespace, and the hosts' subnet (10.77.0.0/24 by default) exists
# only inside the rig.  Hosts can be cut off (link down at the switch, or
# every IPv4 packet dropped) and partitioned pairwise, and healed again.
#
#   rig.sh up N [--subnet A.B.C]    hosts PREFIXh1..PREFIXhN, A.B.C.i/24
#   rig.sh down                     kill every process in the rig, remove it
#   rig.sh exec HOST CMD...         run CMD inside host HOST (1..N)
#   rig.sh addr HOST                print the host's address
#   rig.sh cut HOST [--mode link|drop] [--from OTHER]
#   rig.sh heal HOST|all [--from OTHER]
#   rig.sh status                   hosts, addresses, cuts, processes
#
# Every command takes --prefix P (default $MIXSAN_RIG_PREFIX or "mxr-"),
# which names the rig: its namespaces are PREFIXhub and PREFIXh1..PREFIXhN,
# so rigs with different prefixes live side by side.  The rig's state is
# read back from the kernel each time (the namespaces, the links, the
# nftables tables); there is no state file to go stale.
#
# The layout:
#
#   PREFIXh1: lo, eth0 A.B.C.1/24 --veth-- PREFIXhub: h1 --+
#   PREFIXh2: lo, eth0 A.B.C.2/24 --veth-- PREFIXhub: h2 --+-- br0
#   ...                                                    |
#
# Cuts: "link" sets the switch port (hN in the hub) down, as if the cable
# were pulled: the host keeps its address and sees no carrier.  "drop"
# loads table ip mxrig_cut in the host, dropping every IPv4 packet in and
# out except on loopback: the link stays up, packets vanish.  "--from
# OTHER" adds OTHER's address to the set peers of table ip mxrig_from in
# HOST, dropping HOST's traffic to and from OTHER only.
#
# Runs as root.  Every step is bounded: each ip and nft call runs under a
# 10 s timeout, and down waits 5 s at most for the rig's processes.
set -eu

PREFIX=${MIXSAN_RIG_PREFIX:-mxr-}
SUBNET=${MIXSAN_RIG_SUBNET:-10.77.0}
MODE="link"
FROM=""
T=10 # seconds allowed to any one ip or nft call

usage() {
	sed -n '/^#   rig.sh/s/^#   //p' "$0"
	echo "options: --prefix P (every command; default \$MIXSAN_RIG_PREFIX or mxr-)"
}

die() {
	echo "rig.sh: $*" >&2
	exit 1
}

# ipc ARGS...: ip under a timeout.
ipc() {
	timeout "$T" ip "$@"
}

# nsnft NAMESPACE ARGS...: nft inside a namespace, under a timeout.
nsnft() {
	_ns=$1
	shift
	timeout "$T" ip netns exec "$_ns" nft "$@"
}

# rig_namespaces: the names of this rig's namespaces, one a line (exact
# prefix match, so "mxr-" does not take in "mxr-a"'s).
rig_namespaces() {
	ipc netns list | awk -v p="$PREFIX" '{
		n = $1
		if (index(n, p) != 1) next
		r = substr(n, length(p) + 1)
		if (r == "hub" || r ~ /^h[0-9]+$/) print n
	}' | sort
}

# host_count: N, the number of hosts (0 when there is no rig).
host_count() {
	rig_namespaces | awk -v p="$PREFIX" '$0 != p "hub"' | wc -l | tr -d ' '
}

# host_ns HOST: the namespace of host HOST (1..N); dies on anything else.
host_ns() {
	case $1 in
	'' | *[!0-9]* | 0*) die "host '$1': give a number from 1 to N" ;;
	esac
	n=$(host_count)
	[ "$n" -gt 0 ] || die "no rig with prefix '$PREFIX' (rig.sh up N)"
	if [ "$1" -lt 1 ] || [ "$1" -gt "$n" ]; then
		die "host $1: the rig '$PREFIX' has hosts 1 to $n"
	fi
	echo "${PREFIX}h$1"
}

# host_addr HOST: the host's IPv4 address, read from its eth0.
host_addr() {
	ns=$(host_ns "$1")
	a=$(ipc -n "$ns" -4 -o addr show dev eth0 | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
	[ -n "$a" ] || die "host $1 ($ns) has no address on eth0"
	echo "$a"
}

# ipv6_off NAMESPACE: no IPv6 on interfaces made from now on in that
# namespace, so the only traffic is the IPv4 the rig is for (and ARP).
# Quietly nothing where the kernel has no IPv6.
ipv6_off() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	timeout "$T" ip netns exec "$1" sh -c '
		for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 \
			/proc/sys/net/ipv6/conf/all/disable_ipv6; do
			[ -w "$f" ] && echo 1 >"$f"
		done
		true'
}

check_prefix() {
	case $PREFIX in
	'' | *[!A-Za-z0-9_.-]*) die "prefix '$PREFIX': use letters, digits, '_', '.', '-'" ;;
	esac
	[ ${#PREFIX} -le 40 ] || die "prefix '$PREFIX' is longer than 40 characters"
}

check_subnet() {
	echo "$SUBNET" | grep -Eq '^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$' ||
		die "subnet '$SUBNET': give the first three octets, as in 10.77.0"
	for o in $(echo "$SUBNET" | tr . ' '); do
		[ "$o" -le 255 ] || die "subnet '$SUBNET': octet $o is over 255"
	done
}

# up_failed: the exit trap of a half-built rig; removes it.
up_failed() {
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "rig.sh: up failed; removing what was made" >&2
		cmd_down >/dev/null 2>&1 || true
	fi
}

cmd_up() {
	n=$1
	case $n in
	'' | *[!0-9]* | 0*) die "up: give the number of hosts, 1 to 254" ;;
	esac
	if [ "$n" -lt 1 ] || [ "$n" -gt 254 ]; then
		die "up: $n hosts: 1 to 254 fit in a /24"
	fi
	check_subnet
	inuse=$(rig_namespaces | tr '\n' ' ')
	[ -z "$inuse" ] ||
		die "prefix '$PREFIX' is in use (namespaces: ${inuse% }); remove that rig with: rig.sh down --prefix $PREFIX, or choose another --prefix"

	hub=${PREFIX}hub
	ipc netns add "$hub"
	# From here on, whatever fails half-way, no half-built rig is left
	# behind.  (Not before: if the switch could not be made, another rig.sh
	# up with this prefix may have just made it.)
	trap up_failed EXIT
	ipv6_off "$hub"
	ipc -n "$hub" link set lo up
	ipc -n "$hub" link add br0 type bridge stp_state 0 forward_delay 0
	ipc -n "$hub" link set br0 up
	i=1
	while [ "$i" -le "$n" ]; do
		h=${PREFIX}h$i
		ipc netns add "$h"
		ipv6_off "$h"
		ipc -n "$h" link set lo up
		ipc -n "$hub" link add "h$i" type veth peer name eth0 netns "$h"
		ipc -n "$hub" link set "h$i" master br0
		ipc -n "$hub" link set "h$i" up
		ipc -n "$h" addr add "$SUBNET.$i/24" dev eth0
		ipc -n "$h" link set eth0 up
		i=$((i + 1))
	done
	trap - EXIT
	echo "rig '$PREFIX': $n hosts ${PREFIX}h1..${PREFIX}h$n, $SUBNET.1..$SUBNET.$n/24, switch ${PREFIX}hub"
}

# all_pids: every process in the rig's namespaces, but this shell.
all_pids() {
	for ns in $(rig_namespaces); do
		ipc netns pids "$ns" 2>/dev/null || true
	done | awk -v me="$$" '$1 != me'
}

cmd_down() {
	nss=$(rig_namespaces)
	if [ -z "$nss" ]; then
		echo "rig '$PREFIX': nothing to remove"
		return 0
	fi
	# SIGTERM (with SIGCONT, for stopped processes), SIGKILL after 2 s to
	# whatever is left or was started since, for 5 s at most.
	i=0
	left=""
	while :; do
		left=$(all_pids | tr '\n' ' ')
		[ -n "$left" ] || break
		[ "$i" -lt 50 ] || break
		if [ "$i" -eq 0 ]; then
			# shellcheck disable=SC2086 # one pid a word
			kill -TERM $left 2>/dev/null || true
			# shellcheck disable=SC2086
			kill -CONT $left 2>/dev/null || true
		elif [ "$i" -ge 20 ]; then
			# shellcheck disable=SC2086
			kill -KILL $left 2>/dev/null || true
		fi
		sleep 0.1
		i=$((i + 1))
	done
	for ns in $nss; do
		ipc netns del "$ns"
	done
	echo "rig '$PREFIX': removed $(echo "$nss" | wc -l | tr -d ' ') namespaces"
	if [ -n "$left" ]; then
		echo "rig.sh: processes still alive after SIGKILL (their namespaces live on until they end): $left" >&2
		return 1
	fi
}

cmd_exec() {
	ns=$(host_ns "$1")
	addr=$(host_addr "$1")
	host=$1
	shift
	[ $# -gt 0 ] || die "exec: give a command to run in host $host"
	exec env MIXSAN_RIG_HOST="$host" MIXSAN_RIG_ADDR="$addr" ip netns exec "$ns" "$@"
}

# cut_state HOST: the host's cuts as words: link (its switch port is
# down), drop (every IPv4 packet dropped), from:hM (cut from host M; host M
# has address A.B.C.M).  Empty when it has none.
cut_state() {
	ns=$(host_ns "$1")
	s=""
	flags=$(ipc -n "${PREFIX}hub" -o link show dev "h$1" | sed -n 's/^[^<]*<\([^>]*\)>.*/,\1,/p')
	case $flags in
	*,UP,*) ;;
	*) s="link" ;;
	esac
	nsnft "$ns" list table ip mxrig_cut >/dev/null 2>&1 && s="$s drop"
	if nsnft "$ns" list table ip mxrig_from >/dev/null 2>&1; then
		for a in $(nsnft "$ns" list set ip mxrig_from peers | tr '\n' ' ' |
			sed -n 's/.*elements = {\([^}]*\)}.*/\1/p' | tr -d ','); do
			s="$s from:h${a##*.}"
		done
	fi
	echo "${s# }"
}

cmd_cut() {
	ns=$(host_ns "$1")
	if [ -n "$FROM" ]; then
		[ -z "$MODE_SET" ] ||
			die "cut: --from drops the pair's traffic with nftables; --mode does not apply"
		other=$(host_addr "$FROM")
		[ "$FROM" != "$1" ] || die "cut $1 --from $FROM: a host cannot be cut from itself"
		if ! nsnft "$ns" list table ip mxrig_from >/dev/null 2>&1; then
			nsnft "$ns" -f - <<-EOF
				table ip mxrig_from {
					set peers { type ipv4_addr; }
					chain in {
						type filter hook input priority filter; policy accept;
						ip saddr @peers drop
					}
					chain out {
						type filter hook output priority filter; policy accept;
						ip daddr @peers drop
					}
				}
			EOF
		fi
		nsnft "$ns" add element ip mxrig_from peers "{ $other }"
		echo "host $1: cut from host $FROM ($other)"
		return 0
	fi
	case $MODE in
	link)
		ipc -n "${PREFIX}hub" link set "h$1" down
		;;
	drop)
		if ! nsnft "$ns" list table ip mxrig_cut >/dev/null 2>&1; then
			nsnft "$ns" -f - <<-EOF
				table ip mxrig_cut {
					chain in {
						type filter hook input priority filter; policy accept;
						iif "lo" accept
						drop
					}
					chain out {
						type filter hook output priority filter; policy accept;
						oif "lo" accept
						drop
					}
				}
			EOF
		fi
		;;
	*) die "cut: --mode is link or drop, not '$MODE'" ;;
	esac
	echo "host $1: cut ($MODE)"
}

heal_one() {
	ns=$(host_ns "$1")
	if [ -n "$FROM" ]; then
		other=$(host_addr "$FROM")
		if nsnft "$ns" list table ip mxrig_from >/dev/null 2>&1; then
			nsnft "$ns" delete element ip mxrig_from peers "{ $other }" 2>/dev/null || true
		fi
		echo "host $1: healed from host $FROM ($other)"
		return 0
	fi
	ipc -n "${PREFIX}hub" link set "h$1" up
	for t in mxrig_cut mxrig_from; do
		if nsnft "$ns" list table ip "$t" >/dev/null 2>&1; then
			nsnft "$ns" delete table ip "$t"
		fi
	done
	echo "host $1: healed"
}

cmd_heal() {
	if [ "$1" = all ]; then
		[ -z "$FROM" ] || die "heal all: --from applies to one host"
		n=$(host_count)
		[ "$n" -gt 0 ] || die "no rig with prefix '$PREFIX'"
		i=1
		while [ "$i" -le "$n" ]; do
			heal_one "$i"
			i=$((i + 1))
		done
	else
		heal_one "$1"
	fi
}

cmd_status() {
	n=$(host_count)
	if [ "$n" -eq 0 ]; then
		echo "rig '$PREFIX': none"
		return 0
	fi
	echo "rig '$PREFIX': $n hosts, switch ${PREFIX}hub"
	printf '%-5s %-16s %-16s %-24s %s\n' host namespace address cut processes
	i=1
	while [ "$i" -le "$n" ]; do
		ns=${PREFIX}h$i
		st=$(cut_state "$i")
		procs=""
		for p in $(ipc netns pids "$ns" 2>/dev/null || true); do
			c=$(cat "/proc/$p/comm" 2>/dev/null || echo '?')
			procs="$procs $p($c)"
		done
		printf '%-5s %-16s %-16s %-24s %s\n' "$i" "$ns" "$(host_addr "$i")" \
			"${st:-none}" "${procs# }"
		i=$((i + 1))
	done
	hp=$(ipc netns pids "${PREFIX}hub" 2>/dev/null | tr '\n' ' ')
	[ -z "$hp" ] || echo "processes in the switch ${PREFIX}hub: $hp"
}

# Options before the command.
while [ $# -gt 0 ]; do
	case $1 in
	--prefix)
		[ $# -ge 2 ] || die "--prefix needs a value"
		PREFIX=$2
		shift 2
		;;
	--prefix=*)
		PREFIX=${1#*=}
		shift
		;;
	-h | --help | help)
		usage
		exit 0
		;;
	-*) die "unknown option '$1' (rig.sh --help)" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || {
	usage >&2
	exit 2
}
cmd=$1
shift

# exec: options up to HOST, then the command as given.
if [ "$cmd" = exec ]; then
	while [ $# -gt 0 ]; do
		case $1 in
		--prefix)
			[ $# -ge 2 ] || die "--prefix needs a value"
			PREFIX=$2
			shift 2
			;;
		--prefix=*)
			PREFIX=${1#*=}
			shift
			;;
		*) break ;;
		esac
	done
	[ $# -ge 1 ] || die "exec: rig.sh exec HOST CMD..."
	check_prefix
	[ "$(id -u)" = 0 ] || die "must run as root"
	cmd_exec "$@"
fi

# Other commands: options anywhere, at most one operand.
arg=""
nargs=0
MODE_SET=""
while [ $# -gt 0 ]; do
	case $1 in
	--prefix | --subnet | --mode | --from)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--prefix) PREFIX=$2 ;;
		--subnet) SUBNET=$2 ;;
		--mode)
			MODE=$2
			MODE_SET=1
			;;
		--from) FROM=$2 ;;
		esac
		shift 2
		;;
	--prefix=* | --subnet=* | --mode=* | --from=*)
		v=${1#*=}
		case $1 in
		--prefix=*) PREFIX=$v ;;
		--subnet=*) SUBNET=$v ;;
		--mode=*)
			MODE=$v
			MODE_SET=1
			;;
		--from=*) FROM=$v ;;
		esac
		shift
		;;
	-*) die "unknown option '$1' (rig.sh --help)" ;;
	*)
		arg=$1
		nargs=$((nargs + 1))
		shift
		;;
	esac
done
check_prefix
[ "$(id -u)" = 0 ] || die "must run as root"

# need_operands N: the command takes exactly N operands.
need_operands() {
	[ "$nargs" -eq "$1" ] || die "$cmd: $2"
}

case $cmd in
up)
	need_operands 1 "rig.sh up N [--subnet A.B.C] [--prefix P]"
	cmd_up "$arg"
	;;
down)
	need_operands 0 "rig.sh down [--prefix P]"
	cmd_down
	;;
addr)
	need_operands 1 "rig.sh addr HOST"
	host_addr "$arg"
	;;
cut)
	need_operands 1 "rig.sh cut HOST [--mode link|drop] [--from OTHER]"
	cmd_cut "$arg"
	;;
heal)
	need_operands 1 "rig.sh heal HOST|all [--from OTHER]"
	cmd_heal "$arg"
	;;
status)
	need_operands 0 "rig.sh status [--prefix P]"
	cmd_status
	;;
*) die "unknown command '$cmd' (rig.sh --help)" ;;
esac
