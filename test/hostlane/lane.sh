#!/bin/sh
# Runs inside the lane's guest, from its data disk (/opt/netspawn), once the
# system is up: sets up the host profile named on the kernel command line,
# installs netspawn as a user would, runs the guest tests and prints
# "LANE-RESULT: PROFILE ok|FAIL". The unit that runs it powers the guest off.
set -u
lane=/opt/netspawn
# The lane talks on the second serial port, which nothing else in the guest
# touches: the first is /dev/console, which systemd (re)opens, resets and
# writes to (daemon-reexec, emergency messages) and the kernel logs on.
stty -F /dev/ttyS1 115200 clocal -ixon -ixoff -icanon -echo 2>/dev/null
exec >/dev/ttyS1 2>&1
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
(while sleep 60; do echo "LANE-ALIVE: uptime $(cut -d' ' -f1 /proc/uptime)s, load $(cut -d' ' -f1-3 /proc/loadavg)"; done) &
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
