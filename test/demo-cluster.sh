#!/bin/sh
# make demo-cluster: one netspawn zone spanning three hosts.
#
# The "hosts" a, b and c are network namespaces joined by an underlay bridge
# in a fourth namespace, where etcd runs. Each host has its own netspawnd
# (with its own runtime and state directories in the demo's temporary
# directory) started with --cluster-etcd, and its own busybox tree.
#
# Nothing of the machine's own network is touched: the namespaces are held
# by bind mounts on files in the demo's directory (nothing in /run/netns),
# and on exit, error or Ctrl-C every process started here is stopped by PID,
# the namespaces are released and the directory is removed.
set -eu
[ "$(id -u)" = 0 ] || { echo "make demo-cluster needs root (sudo make demo-cluster)" >&2; exit 1; }
for t in etcd etcdctl nsenter unshare ip getent findmnt go; do
	command -v "$t" >/dev/null || { echo "demo-cluster: $t is missing (make demo-cluster installs the Debian packages it needs)" >&2; exit 1; }
done
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/bin"
[ -x "$bin/netspawnd" ] || { echo "demo-cluster: build first (make build)" >&2; exit 1; }

etcd_url=http://198.18.0.254:2379
ttl=3s
hosts="a b c"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*" | fold -s -w 100; }
die() { echo "demo-cluster: $*" >&2; exit 1; }

# ns_pids NS: the PIDs of every process in namespace NS, and of their
# descendants (a container's processes live in namespaces of their own).
ns_pids() {
	f="$nsdir/$1"
	[ -e "$f" ] || return 0
	ino=$(stat -L -c %i "$f" 2>/dev/null) || return 0
	roots=$(find /proc/[0-9]*/ns/net -maxdepth 0 -lname "net:\[$ino\]" 2>/dev/null | cut -d/ -f3 | tr '\n' ' ')
	[ -n "$roots" ] || return 0
	ps -e -o pid=,ppid= | awk -v roots="$roots" -v self=$$ '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
		{ parent[$1] = $2 }
		END {
			do { more = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; more = 1 } } while (more)
			for (p in keep) if (p != self && (p in parent)) print p
		}'
}

# stop_ns NS...: SIGTERM to every process in the namespaces (netspawn then
# stops its container and cleans up after it), SIGKILL after 5 s.
stop_ns() {
	i=0
	empty=0
	while :; do
		pids=""
		for n in "$@"; do pids="$pids $(ns_pids "$n" | tr '\n' ' ')"; done
		if [ -z "$(echo $pids)" ]; then
			# Twice empty: nothing was starting as the first scan ran.
			empty=$((empty + 1))
			[ $empty -lt 2 ] || return 0
			sleep 0.2
			continue
		fi
		empty=0
		if [ $i -lt 50 ]; then kill -TERM $pids 2>/dev/null || true; else kill -KILL $pids 2>/dev/null || true; fi
		[ $i -lt 100 ] || { echo "demo-cluster: processes left:$pids" >&2; return 0; }
		sleep 0.1
		i=$((i + 1))
	done
}

# stop_pids PID...: SIGTERM, and SIGKILL to those still there after 5 s.
stop_pids() {
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null
	i=0
	while [ $i -lt 50 ]; do
		alive=""
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -n "$alive" ] || return 0
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL $alive 2>/dev/null
}

work=""
member_pids=""
cleanup() {
	rc=$?
	[ -z "$sig" ] || rc=$sig
	# The clean-up runs to its end, a second Ctrl-C or not (it is bounded:
	# SIGKILL after 5 s).
	trap '' INT TERM HUP
	trap - EXIT
	set +e
	[ -n "$work" ] || exit $rc
	printf '\n\033[1m== Cleaning up\033[0m\n'
	# (A Ctrl-C reaches netspawnd too: then its ending is no news.)
	[ -n "$sig" ] || for h in a c; do
		eval "p=\${netspawnd_$h:-}"
		[ -z "$p" ] || kill -0 "$p" 2>/dev/null || echo "demo-cluster: netspawnd on host $h (PID $p) had ended before the clean-up" >&2
	done
	echo "stopping the members (each netspawn stops its container and tells its netspawnd)"
	stop_pids $member_pids
	# netspawnd unregisters a machine once its leader is gone; stopping it
	# first would leave netspawn's clean-up to start a new one on demand.
	if [ -n "$member_pids" ] && [ -n "${netspawnd_a:-}" ] && kill -0 "$netspawnd_a" 2>/dev/null; then
		i=0; while listed_local a web && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	fi
	echo "stopping netspawnd and anything else on hosts a, b and c"
	stop_ns a b c
	echo "stopping etcd"
	stop_ns underlay
	# Release the namespaces (their links go with them), then anything
	# else mounted under the demo's directory.
	for n in a b c underlay; do
		[ -e "$nsdir/$n" ] && umount "$nsdir/$n" 2>/dev/null
	done
	findmnt -rn -o TARGET | grep "^$work" | sort -r | while read -r m; do umount -l "$m"; done
	if [ -n "${NETSPAWN_DEMO_LOGS:-}" ]; then
		mkdir -p "$NETSPAWN_DEMO_LOGS"
		for f in "$work"/*.log "$work"/*/*.log "$work"/*/run/*.log; do
			[ -f "$f" ] && cp "$f" "$NETSPAWN_DEMO_LOGS/$(echo "${f#"$work"/}" | tr / _)"
		done
		echo "logs kept in $NETSPAWN_DEMO_LOGS"
	fi
	rm -rf "$work"
	if [ $rc = 0 ]; then
		echo "Done: processes stopped, namespaces released, $work removed."
	else
		echo "demo-cluster: stopped (exit $rc); cleaned up." >&2
	fi
	exit $rc
}
# A signal's exit status is kept in sig: dash gives an EXIT trap run by an
# exit in another trap the status from before it.
sig=""
trap cleanup EXIT
trap 'sig=130; exit 130' INT
trap 'sig=143; exit 143' TERM
trap 'sig=129; exit 129' HUP
work=$(mktemp -d /var/tmp/netspawn-cluster-demo.XXXXXX)
nsdir="$work/ns"

# on HOST CMD...: run CMD in HOST's network namespace (only the network
# namespace: nsenter, not ip netns exec, which remounts /sys), with the
# directories of HOST's netspawnd.
on() {
	h=$1
	shift
	env NETSPAWN_RUNTIME_DIR="$work/$h/run" NETSPAWN_STATE_DIR="$work/$h/state" NETSPAWN_IMAGES_DIR="$work/$h/machines" \
		nsenter --net="$nsdir/$h" -- "$@"
}
# on_bg HOST CMD...: on, in the background; bg_pid is CMD's own PID (env and
# nsenter exec it), so that signals reach CMD itself.
on_bg() {
	h=$1
	shift
	env NETSPAWN_RUNTIME_DIR="$work/$h/run" NETSPAWN_STATE_DIR="$work/$h/state" NETSPAWN_IMAGES_DIR="$work/$h/machines" \
		nsenter --net="$nsdir/$h" -- "$@" &
	bg_pid=$!
}
# show HOST CMD...: print the command, then run it on HOST.
show() {
	h=$1
	shift
	cmd=$1
	shift
	printf '\033[2m[host %s]\033[0m $ %s\n' "$h" "${cmd#"$bin"/} $*"
	on "$h" "$cmd" "$@" || true
}
# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	limit=$(($1 * 10))
	what=$2
	shift 2
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt $limit ] || die "gave up waiting for $what"
		sleep 0.1
	done
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
ctl() { h=$1; shift; on "$h" "$bin/netspawnctl" "$@"; }
listed() { ctl "$1" list 2>/dev/null | grep -q "^$2 "; }
listed_local() { ctl "$1" list --local 2>/dev/null | grep -q "^$2 "; }

step "The world: three hosts (a, b, c) on an underlay network, and etcd"
say "Each host is a network namespace with a link ul0 on an underlay bridge 198.18.0.0/24 in a fourth namespace, where etcd listens on 198.18.0.254:2379. All of it lives in $work."
mkdir -p "$nsdir"
for n in underlay $hosts; do
	touch "$nsdir/$n"
	unshare --net="$nsdir/$n" ip link set lo up
done
nsenter --net="$nsdir/underlay" sh -ec 'ip link add ulbr0 type bridge; ip addr add 198.18.0.254/24 dev ulbr0; ip link set ulbr0 up'
i=11
for h in $hosts; do
	nsenter --net="$nsdir/underlay" ip link add "ul-$h" type veth peer name ul0 netns "$nsdir/$h"
	nsenter --net="$nsdir/underlay" sh -ec "ip link set ul-$h master ulbr0; ip link set ul-$h up"
	nsenter --net="$nsdir/$h" sh -ec "ip addr add 198.18.0.$i/24 dev ul0; ip link set ul0 up"
	eval "addr_$h=198.18.0.$i"
	echo "host $h: ul0 198.18.0.$i/24"
	i=$((i + 1))
done

step "Starting etcd on the underlay"
mkdir -p "$work/etcd"
printf '$ etcd --data-dir %s --listen-client-urls %s ...\n' "$work/etcd" "$etcd_url"
nsenter --net="$nsdir/underlay" -- etcd --name demo --data-dir "$work/etcd" \
	--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster demo=http://127.0.0.1:2380 --log-level warn >"$work/etcd.log" 2>&1 &
wait_for 30 "etcd to become healthy (log: $work/etcd.log)" nsenter --net="$nsdir/underlay" etcdctl --endpoints "$etcd_url" endpoint health
printf '$ etcdctl --endpoints %s endpoint health\n' "$etcd_url"
nsenter --net="$nsdir/underlay" etcdctl --endpoints "$etcd_url" endpoint health

step "Building a busybox OS tree, one copy per host"
(cd "$top" && CGO_ENABLED=0 go run ./test/mkrootfs "$work/tree")
for h in $hosts; do
	mkdir -p "$work/$h/run" "$work/$h/state" "$work/$h/machines"
	cp -a "$work/tree" "$work/$h/tree"
done
du -sh "$work/tree" | cut -f1 | sed 's/^/size: /'

step "Starting netspawnd on each host, in cluster mode"
say "--cluster-etcd makes every --network-zone a zone spanning the hosts: etcd keeps the zone's subnet and VNI and every member's address and name; each host's bridge vz-ZONE gets a VXLAN port vx-ZONE to the other hosts carrying the zone. A host's entries live under a lease of --cluster-ttl ($ttl)."
for h in $hosts; do
	eval "ua=\$addr_$h"
	printf '\033[2m[host %s]\033[0m $ netspawnd --cluster-etcd=%s --cluster-node=%s --cluster-address=%s --cluster-ttl=%s\n' "$h" "$etcd_url" "$h" "$ua" "$ttl"
	on_bg "$h" "$bin/netspawnd" --config /dev/null --runtime-dir "$work/$h/run" --state-dir "$work/$h/state" \
		--cluster-etcd "$etcd_url" --cluster-node "$h" --cluster-address "$ua" --cluster-ttl "$ttl" \
		>"$work/$h/netspawnd.log" 2>&1
	eval "netspawnd_$h=$bg_pid"
done
for h in $hosts; do
	wait_for 15 "netspawnd on host $h (log: $work/$h/netspawnd.log)" test -S "$work/$h/run/netspawnd.sock"
done
echo "netspawnd listening on hosts a, b and c"

step "Two members of zone blue: web on host a, db on host b"
start_member() {
	h=$1 name=$2
	printf '\033[2m[host %s]\033[0m $ netspawn -D tree -M %s --network-zone=blue sleep 1000 &\n' "$h" "$name"
	on_bg "$h" "$bin/netspawn" -q -D "$work/$h/tree" -M "$name" --network-zone=blue sleep 1000 >"$work/$h/$name.log" 2>&1
	member_pids="$member_pids $bg_pid"
}
start_member a web
start_member b db
wait_for 30 "web on host a (log: $work/a/web.log)" listed_local a web
wait_for 30 "db on host b (log: $work/b/db.log)" listed_local b db
c_sees_both() { listed c web && listed c db; }
wait_for 15 "host c to list web and db" c_sees_both

step "Host c runs no machine, yet lists the whole cluster (HOST column)"
show c "$bin/netspawnctl" list
say "(--local shows only this host's machines:)"
show a "$bin/netspawnctl" list --local

step "The zone: one subnet and VNI for all hosts"
show a "$bin/netspawnctl" networks
printf '\033[2m[host a]\033[0m $ ip -d link show vx-blue | head -3\n'
on a ip -d link show vx-blue | head -3

step "web (on host a) pings db (on host b) by name, across the VXLAN"
say "netspawnd's DNS on each member's gateway answers for members of the zone on every host."
wait_for 15 "web to reach db" ctl a shell web ping -c1 -W1 db
show a "$bin/netspawnctl" shell web ping -c2 -W2 db
show a "$bin/netspawnctl" shell web ping -4 -c1 -W2 db

step "Host c resolves web (on host a) by name through libnss_netspawn"
say "In a private mount namespace (unshare -m) with its own nsswitch.conf ('hosts: files netspawn'), hosts and resolv.conf bind-mounted over /etc's: the machine's files are untouched."
nss="$work/nss"
mkdir -p "$nss"
printf 'hosts: files netspawn\n' >"$nss/nsswitch.conf"
printf '127.0.0.1 localhost\n' >"$nss/hosts"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$nss/resolv.conf"
lookup() {
	on c unshare -m --propagation private sh -ec "for f in nsswitch.conf hosts resolv.conf; do mount --bind $nss/\$f /etc/\$f; done; exec env LD_LIBRARY_PATH=$bin getent \"\$@\"" sh "$@"
}
wait_for 10 "host c to resolve web" lookup hosts web
printf '\033[2m[host c]\033[0m $ unshare -m sh -c "mount --bind ... /etc/nsswitch.conf ...; LD_LIBRARY_PATH=bin getent hosts web db"\n'
lookup hosts web db || true
printf '\033[2m[host c]\033[0m $ ... getent ahostsv4 web\n'
lookup ahostsv4 web || true

step "Host b dies: netspawnd killed with SIGKILL, then every process in its namespace"
say "Nothing on b says goodbye: its lease in etcd runs out after the TTL ($ttl), and the other hosts drop its names."
# One kill(1) for all: netspawn on b gets no chance to start a new netspawnd.
eval "kill -KILL \$netspawnd_b $(ns_pids b | tr '\n' ' ') 2>/dev/null || true"
dead=$(date +%s%N)
stop_ns b
echo "killed host b's netspawnd and every process on host b"
db_gone_from_a() { out=$(ctl a list 2>/dev/null) && ! printf '%s\n' "$out" | grep -q '^db '; }
wait_for 30 "db to leave host a's list" db_gone_from_a
echo "db gone from host a's list $(ms_since "$dead") ms after host b died (TTL $ttl)"
show a "$bin/netspawnctl" list
show a "$bin/netspawnctl" networks
printf '\033[2m[host a]\033[0m $ netspawnctl shell web ping -c1 -W1 db\n'
ctl a shell web ping -c1 -W1 db 2>&1 || echo "(db no longer resolves or answers: exit $?)"
