#!/bin/bash
# A design probe for cluster zones (issue 18), not a benchmark of netspawn:
# how much of the member path's cost over the underlay is its structure,
# measured on bare kernel objects with no netspawnd and no nftables.
#
# Three paths between two namespaces, on one underlay bridge (ulbr) joining
# two "host" namespaces, alternating rounds of UDP request/response with
# both ends pinned to one CPU (the cluster benchmark's udpping/udpecho
# children), and optionally iperf3:
#   plain    two namespaces on the underlay bridge itself;
#   bridged  netspawn's design: member veth -> zone bridge -> VXLAN port on
#            each host;
#   macvlan  the member's interface a macvlan (bridge mode) on the VXLAN
#            device: no veth, no bridge on the hosts.
#
#   go build -o /tmp/tr/bench ./test/bench
#   sudo test/bench/probes/cluster-member-paths.sh [ROUNDS] [COUNT] [tcp]
#
# With RULESET=FILE (netspawnd's own ruleset, `nft list ruleset` in a host
# namespace of the cluster benchmark while it runs), odd rounds load FILE
# into both host namespaces (with ip_forward on) and even rounds run
# without rules, so the rules' cost is seen beside the structure's. The
# bridged path uses the benchmark's names (vz-bench, vx-bench) and a
# 10.128.0.0/16 subnet, so the ruleset's sets and wildcards match.
#
# Everything lives in namespaces named nsprobe-*, removed on exit.
set -euo pipefail
rounds=${1:-6}
count=${2:-3000}
tcp=${3:-}
bench=${BENCH:-/tmp/tr/bench}
cpu=${CPU:-0}
P=nsprobe
spaces="ul ha hb pa pb ma mb ca cb"
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for n in $spaces; do ip netns del $P-$n 2>/dev/null || true; done
}
trap cleanup EXIT
[ -x "$bench" ] || { echo "no benchmark binary at $bench: go build -o $bench ./test/bench" >&2; exit 1; }
cleanup

for n in $spaces; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
ip -n $P-ul link add ulbr type bridge
ip -n $P-ul link set ulbr up
for n in ha hb pa pb; do
	ip -n $P-ul link add u$n type veth peer name eth0 netns $P-$n
	ip -n $P-ul link set u$n master ulbr up
	ip -n $P-$n link set eth0 up
done
ip -n $P-ha addr add 198.18.1.1/24 dev eth0
ip -n $P-hb addr add 198.18.1.2/24 dev eth0
ip -n $P-pa addr add 198.18.1.11/24 dev eth0
ip -n $P-pb addr add 198.18.1.12/24 dev eth0

for h in a b; do
	if [ $h = a ]; then me=198.18.1.1 peer=198.18.1.2 n=1; else me=198.18.1.2 peer=198.18.1.1 n=2; fi
	ns=$P-h$h
	# macvlan: VNI 42, the member's host0 a macvlan on the VXLAN device.
	ip -n $ns link add vxm type vxlan id 42 local $me dstport 4789 nolearning
	ip -n $ns link set vxm mtu 1450 up
	bridge -n $ns fdb append 00:00:00:00:00:00 dev vxm dst $peer
	ip -n $ns link add mv0 link vxm type macvlan mode bridge
	ip -n $ns link set mv0 netns $P-m$h
	ip -n $P-m$h link set mv0 name host0 up
	ip -n $P-m$h addr add 10.99.0.$n/24 dev host0
	# bridged: VNI 43 on a zone bridge, the member on a veth.
	ip -n $ns link add vx-bench type vxlan id 43 local $me dstport 4789 nolearning
	ip -n $ns link set vx-bench mtu 1450
	bridge -n $ns fdb append 00:00:00:00:00:00 dev vx-bench dst $peer
	ip -n $ns link add vz-bench type bridge
	ip -n $ns link set vz-bench mtu 1450 up
	ip -n $ns link set vx-bench master vz-bench up
	ip -n $ns link add vb type veth peer name host0 netns $P-c$h
	ip -n $ns link set vb mtu 1450 master vz-bench up
	ip -n $P-c$h link set host0 mtu 1450 up
	ip -n $P-c$h addr add 10.128.0.$n/16 dev host0
done

ready=$(mktemp -d)
for pair in "pb 198.18.1.12" "mb 10.99.0.2" "cb 10.128.0.2"; do
	set -- $pair
	ip netns exec $P-$1 env NETSPAWN_BENCH_CHILD=udpecho NETSPAWN_BENCH_CPU=$cpu UDPECHO_ADDR=$2:7777 "$bench" >"$ready/$1" 2>&1 &
	pids+=($!)
done
until [ "$(cat "$ready"/* | grep -c ready)" = 3 ]; do sleep 0.1; done
rm -rf "$ready"

# rules on|off: netspawnd's ruleset in both host namespaces, or none.
rules() {
	[ -n "${RULESET:-}" ] || return 0
	for h in ha hb; do
		ip netns exec $P-$h sysctl -qw net.ipv4.ip_forward=1
		ip netns exec $P-$h nft flush ruleset
		if [ "$1" = on ]; then ip netns exec $P-$h nft -f "$RULESET"; fi
	done
	tag="[$([ "$1" = on ] && echo "with rules" || echo "no rules")] "
}
setrules() { if [ $(($1 % 2)) = 1 ]; then rules on; else rules off; fi; }
tag=

# Median round trip in microseconds.
rtt() {
	ip netns exec $P-$1 env NETSPAWN_BENCH_CHILD=udpping NETSPAWN_BENCH_CPU=$cpu UDPPING_TARGET=$2:7777 \
		UDPPING_WARM=200 UDPPING_COUNT=$count "$bench" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}
echo "UDP request/response, median of $count, both ends on CPU $cpu (us; ratio to plain)"
for r in $(seq 1 "$rounds"); do
	setrules "$r"
	p=$(rtt pa 198.18.1.12)
	m=$(rtt ma 10.99.0.2)
	c=$(rtt ca 10.128.0.2)
	printf "%sround %d: plain %s  macvlan %s (%.2fx)  bridged %s (%.2fx)\n" "$tag" "$r" "$p" "$m" "$(echo "$m/$p" | bc -l)" "$c" "$(echo "$c/$p" | bc -l)"
done

if [ -n "$tcp" ]; then
	echo "TCP, iperf3 -t 3, one stream (Gbit/s)"
	for r in $(seq 1 "$rounds"); do
		setrules "$r"
		for pair in "pa pb 198.18.1.12 plain" "ma mb 10.99.0.2 macvlan" "ca cb 10.128.0.2 bridged"; do
			set -- $pair
			ip netns exec $P-$2 iperf3 -s -1 -B "$3" >/dev/null 2>&1 &
			pids+=($!)
			until ip netns exec $P-$2 ss -ltn | grep -q ":5201"; do sleep 0.05; done
			printf "%sround %d %s: %s\n" "$tag" "$r" "$4" "$(ip netns exec $P-$1 iperf3 -c "$3" -t 3 -O 1 -f g | awk '/receiver/ {print $7}')"
		done
	done
fi
