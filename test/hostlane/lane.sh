#!/bin/sh
# Runs inside the lane's guest, from its data disk (/opt/netspawn), once the
# system is up: sets up the host profile named on the kernel command line,
# installs netspawn as a user would, runs the guest tests and prints
# "LANE-RESULT: PROFILE ok|FAIL". The unit that runs it powers the guest off.
set -u
lane=/opt/netspawn
# The lane talks on a virtio-serial port named netspawn.lane, which is no
# terminal: nothing in the guest can make it the lane's controlling tty,
# change its line settings or hang it up, and no emulated UART's interrupts
# pace it. The serial port (ttyS0) is /dev/console, which systemd (re)opens,
# resets and writes to, and the kernel logs on. Until the port shows up,
# words go to the kernel's log (the console file the host prints on failure).
kmsg() { echo "<3>netspawn-lane: $*" >/dev/kmsg; }
port=
for i in $(seq 1 120); do
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = netspawn.lane ] && port=/dev/${p##*/}
	done
	[ -n "$port" ] && [ -c "$port" ] && break
	[ "$i" = 1 ] && modprobe virtio_console 2>/dev/null
	sleep 0.5
done
if [ -z "$port" ]; then
	kmsg "no virtio-serial port named netspawn.lane after 60 s: the host cannot hear the lane"
	exit 1
fi
exec >"$port" 2>&1
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
profile=$(arg netspawn.profile)
run=$(arg netspawn.run)

echo "LANE-FACTS: profile=$profile init=$(cat /proc/1/comm) cgroup=$(stat -fc %T /sys/fs/cgroup)" \
	"controllers=\"$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)\"" \
	"mount=\"$(grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f10-)\"" \
	"kernel=$(uname -r) systemd=$(systemctl --version | head -1 | cut -d' ' -f2)" \
	"uptime=$(cut -d' ' -f1 /proc/uptime)s"

# netspawn installed as make install and the docs say: binaries, the NSS
# module, the service file.
install -m 0755 "$lane/bin/netspawn" "$lane/bin/netspawnctl" /usr/local/bin/
install -m 0755 "$lane/bin/netspawnd" /usr/local/sbin/
install -m 0644 "$lane/bin/libnss_netspawn.so.2" /lib/x86_64-linux-gnu/
ldconfig
install -m 0644 "$lane/netspawnd.service" /etc/systemd/system/
# Its debug log, for the journal excerpts the tests print when they fail.
mkdir -p /etc/netspawn && echo "log-level=debug" >/etc/netspawn/netspawnd.conf
systemctl daemon-reload

case "$profile" in
networkd)
	# resolved's stub and nss-resolve, netspawn first as the docs say.
	ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
	sed -i 's/^hosts:.*/hosts: files netspawn resolve [!UNAVAIL=return] dns/' /etc/nsswitch.conf
	;;
firewall)
	# What Docker leaves on a host: br_netfilter, and forward policy drop.
	modprobe br_netfilter
	sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
	nft -f - <<'NFT'
table ip filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; }
}
table ip6 filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; }
}
NFT
	sed -i 's/^hosts:.*/hosts: files netspawn dns/' /etc/nsswitch.conf
	;;
*)
	sed -i 's/^hosts:.*/hosts: files netspawn dns/' /etc/nsswitch.conf
	;;
esac
systemctl enable --now netspawnd.service >/dev/null 2>&1 || echo "LANE: netspawnd.service did not start"

echo "LANE: running the guest tests"
# A heartbeat, so that a stuck test is told from a stuck guest.
# It goes to the kernel's log too: if the port ever stalls, the console file
# still shows whether the guest lived on.
(while sleep 60; do
	alive="LANE-ALIVE: uptime $(cut -d' ' -f1 /proc/uptime)s, load $(cut -d' ' -f1-3 /proc/loadavg)"
	kmsg "$alive"
	echo "$alive"
done) &
cd "$lane"
export NETSPAWN_BIN=/usr/local/bin NETSPAWN_SBIN=/usr/local/sbin NETSPAWN_TEST_CACHE="$lane/cache" \
	NETSPAWN_LANE_PROFILE="$profile" CI=true
# A test stuck for good ends with every goroutine's stack, well within the
# driver's time limit.
./hosts.test -test.v -test.timeout 20m ${run:+-test.run "$run"} 2>&1
rc=$?
if [ $rc = 0 ]; then
	echo "LANE-RESULT: $profile ok"
else
	echo "LANE-RESULT: $profile FAIL (status $rc)"
fi
