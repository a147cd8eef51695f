#!/bin/sh
# Installs the given Debian packages when any of them is missing.
#
# Every failure says what failed, with apt-get's own words. Packages with a
# service (kea-dhcp4-server) must not start it on install: for the duration,
# /usr/sbin/policy-rc.d forbids starting services (Debian's convention). A
# policy file that already forbids them (container and cloud images ship one)
# is left as it is; any other is moved aside and put back afterwards.
#
# For the install path's own test: APT_GET names the apt-get to run and
# POLICY_RC_D the policy file (defaults: apt-get, /usr/sbin/policy-rc.d).
set -eu

apt_get=${APT_GET:-apt-get}
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}

fail() {
	echo "install-deps: $*" >&2
	exit 1
}

missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	fail "missing Debian packages:$missing (run as root, or: apt-get install$missing)"
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive

log=$(mktemp) || fail "cannot make a temporary file for apt-get's output"
saved=""
made=""
cleanup() {
	if [ -n "$made" ]; then
		rm -f "$policy"
	fi
	if [ -n "$saved" ]; then
		mv -f "$saved" "$policy" || echo "install-deps: could not put $policy back from $saved" >&2
	fi
	rm -f "$log"
}
# The script's status is what it exits with, never the trap's last command.
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Does the policy in place already forbid starting services?
denies() { [ -x "$policy" ] && { "$policy" netspawn-probe start >/dev/null 2>&1; [ $? -eq 101 ]; }; }
if [ -e "$policy" ] && ! denies; then
	saved="$policy.netspawn-saved"
	mv -f "$policy" "$saved" || fail "cannot move $policy aside"
fi
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by netspawn test/install-deps.sh for the duration of an install\nexit 101\n' >"$policy" ||
		fail "cannot write $policy"
	made=1
	chmod 755 "$policy" || fail "cannot make $policy executable"
fi

run() {
	if ! "$apt_get" "$@" >"$log" 2>&1; then
		echo "install-deps: apt-get $* failed:" >&2
		sed 's/^/  /' "$log" >&2
		exit 1
	fi
}
run update -qq
# shellcheck disable=SC2086
run install -y -qq --no-install-recommends $missing
echo "installed:$missing"
