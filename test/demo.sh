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

step "Start-up time: 20 containers running /bin/true"
start=$(date +%s%N)
i=0; while [ $i -lt 20 ]; do "$bin/netspawn" -q -D "$tree" /bin/true; i=$((i+1)); done
end=$(date +%s%N)
echo "$(( (end-start)/20000000 )).$(( (end-start)/200000 % 100 )) ms per container"
DEMO
step "Done: the tree is removed, nothing is left mounted or running."
