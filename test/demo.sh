#!/bin/sh
# make demo: build a small busybox OS tree and show what netspawn does with
# it. Everything runs in a network namespace made for the demo, and the tree
# lives in a temporary directory removed at the end.
set -eu
[ "$(id -u)" = 0 ] || { echo "make demo needs root (sudo make demo)" >&2; exit 1; }
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/bin"
work=$(mktemp -d /var/tmp/netspawn-demo.XXXXXX)
cleanup() {
	pkill -f "netspawnd --runtime-dir $work/run" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
tree="$work/demo"
# The demo's netspawnd keeps its state in the demo's directory.
export NETSPAWN_RUNTIME_DIR="$work/run" NETSPAWN_STATE_DIR="$work/state" NETSPAWN_IMAGES_DIR="$work/machines"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" || true; }

step "Building a busybox OS tree in $tree"
(cd "$top" && CGO_ENABLED=0 go run ./test/mkrootfs "$tree")
du -sh "$tree" | cut -f1 | sed 's/^/size: /'

# The rest runs in a private network namespace: the demo touches nothing of the host's network.
export tree bin
unshare --net sh -eu <<'DEMO'
ip link set lo up
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" || true; }

step "A command in a container: its own hostname, PID 1, its own /proc and /dev"
show "$bin/netspawn" -D "$tree" -M demo sh -c 'echo "hostname: $(hostname)"; echo "my PID: $$"; echo "container=$container"; ps; ls /dev | tr "\n" " "; echo'

step "--as-pid2: a stub init is PID 1 and the command PID 2"
show "$bin/netspawn" -q -D "$tree" -a sh -c 'echo "my PID: $$"; ps -o pid,comm'

step "Exit status passes through"
"$bin/netspawn" -q -D "$tree" sh -c 'exit 42' || echo "netspawn exited with $?"

step "Binds, read-only kernel knobs, no CAP_NET_ADMIN on the shared network"
mkdir -p /tmp/netspawn-demo-share.$$ && echo "a file from the host" > /tmp/netspawn-demo-share.$$/hello
show "$bin/netspawn" -q -D "$tree" --bind-ro=/tmp/netspawn-demo-share.$$:/mnt sh -c 'cat /mnt/hello; echo x > /mnt/hello || true; echo 1 > /proc/sys/kernel/ns_last_pid || true; ip link set lo down || true'
rm -rf /tmp/netspawn-demo-share.$$

step "--private-network: only lo, and the container may configure it"
show "$bin/netspawn" -q -D "$tree" --private-network sh -c 'ip addr add 10.0.0.1/8 dev lo && ip addr'

step "Networking: two containers with -n get addresses from netspawnd (started on demand)"
mkdir -p "$tree/www" && echo "hello from web, through a port forward" > "$tree/www/index.html"
# Both run from the one tree, so read-only: like systemd-nspawn, netspawn locks
# a tree a container may write to, and refuses a second one on it.
"$bin/netspawn" -q -D "$tree" --read-only -M web -n -p 8080:80 httpd -f -p 80 -h /www &
web=$!
"$bin/netspawn" -q -D "$tree" --read-only -M db -n sleep 600 &
db=$!
listed() { "$bin/netspawnctl" list 2>/dev/null | grep -q "^$1 "; }
i=0; while [ $i -lt 100 ] && ! { listed web && listed db; }; do sleep 0.1; i=$((i+1)); done
# web serves once httpd has bound its port.
i=0; while [ $i -lt 100 ] && ! timeout 2 busybox wget -qO /dev/null http://127.0.0.1:8080/ 2>/dev/null; do sleep 0.1; i=$((i+1)); done
show "$bin/netspawnctl" list

step "db reaches web by name (netspawnd's DNS on each container's gateway)"
show "$bin/netspawnctl" shell db sh -c 'cat /etc/resolv.conf; ping -c1 -W2 web; wget -qO- http://web/'

step "The host reaches both by name through libnss_netspawn (in a private mount namespace with its own nsswitch.conf)"
nss=$(mktemp -d)
printf 'hosts: files netspawn dns\n' > "$nss/nsswitch.conf"
printf 'nameserver 127.0.0.1\n' > "$nss/resolv.conf"
unshare -m --propagation private sh -c "mount --bind $nss/nsswitch.conf /etc/nsswitch.conf; mount --bind $nss/resolv.conf /etc/resolv.conf; export LD_LIBRARY_PATH=$bin; echo '\$ getent hosts web db'; getent hosts web db; echo '\$ ping -c1 web'; ping -c1 -W2 web 2>/dev/null || busybox ping -c1 -W2 web"
rm -rf "$nss"

step "A forwarded port answers on the host's localhost (-p 8080:80)"
show busybox wget -qO- http://127.0.0.1:8080/

kill $web $db; wait $web $db 2>/dev/null || true

step "Start-up time: 20 containers running /bin/true"
start=$(date +%s%N)
i=0; while [ $i -lt 20 ]; do "$bin/netspawn" -q -D "$tree" /bin/true; i=$((i+1)); done
end=$(date +%s%N)
echo "$(( (end-start)/20000000 )).$(( (end-start)/200000 % 100 )) ms per container"
DEMO
step "Done: the tree is removed, nothing is left mounted or running."
