#!/bin/sh
# Builds the Debian package netspawn_VERSION_ARCH.deb into OUTDIR (default
# dist) with dpkg-deb, from `make install DESTDIR=... PREFIX=/usr`: what
# make install installs (programs, NSS module, CNI plugin, service files,
# documentation, and man pages and completions as they are added there) is
# what the package holds. Debian's layout on top (docs/deb.md):
#   /usr/lib/TRIPLET/libnss_netspawn.so.2     ldconfig trigger
#   /usr/lib/cni/netspawn                     (not /opt/cni/bin: not for packages)
#   /usr/lib/systemd/system/netspawnd.service enabled, not started
#   /etc/netspawn/netspawnd.conf              conffile, all commented out
#   /usr/share/netspawn/                      OpenRC script, nsswitch example
# Prints the path of the .deb. $VERSION overrides git describe.
set -eu

fail() {
	echo "make deb: $*" >&2
	exit 1
}

out=${1:-dist}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
for t in dpkg-deb dpkg-architecture; do
	command -v "$t" >/dev/null || fail "$t is not installed (apt-get install dpkg-dev)"
done
arch=$(dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
desc=${VERSION:-$(git -C "$top" describe --tags --always --dirty 2>/dev/null || echo devel)}
date=$(git -C "$top" log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d)
debver=$("$here/version.sh" "$desc" "$date")

stage=$(mktemp -d "${TMPDIR:-/tmp}/netspawn-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root=$stage/root

# The files, as make install puts them (run as the invoking user; the
# package's owner is root through dpkg-deb --root-owner-group).
make -C "$top" --no-print-directory install DESTDIR="$root" PREFIX=/usr OUT="$stage/bin" \
	LIBDIR="/usr/lib/$multiarch" CNIBINDIR=/usr/lib/cni VERSION="$desc" >"$stage/install.log" 2>&1 ||
	{ cat "$stage/install.log" >&2; fail "make install into the staging directory failed"; }

share=$root/usr/share/netspawn
install -d "$root/usr/lib/systemd/system" "$root/etc/netspawn"
mv "$share/netspawnd.service" "$root/usr/lib/systemd/system/netspawnd.service"
mv "$share/netspawnd.conf" "$root/etc/netspawn/netspawnd.conf"
# The OpenRC script stays in /usr/share/netspawn: Debian's /etc/init.d holds
# LSB scripts that sysvinit and systemd's generator run, and an openrc-run
# script is not one (docs/deb.md says how to use it with OpenRC).

# As dh_strip does for shared objects (the Go programs are built with -s -w).
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/lib/$multiarch/libnss_netspawn.so.2"
chmod 0755 "$share/netspawnd.openrc"
install -d "$root/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/netspawn"

doc=$root/usr/share/doc/netspawn
install -d "$doc"
install -m 0644 "$here/copyright" "$doc/copyright"
{
	echo "netspawn ($debver) unstable; urgency=medium"
	echo
	echo "  * Built from git $desc."
	echo
	echo " -- netspawn developers <netspawn@users.noreply.github.com>  $(date -u -R -d "@$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)")"
} >"$stage/changelog.Debian"
gzip -9n <"$stage/changelog.Debian" >"$doc/changelog.Debian.gz"
# Debian compresses documentation larger than 4 KiB (the unit's
# Documentation= names netspawnd.md: it stays plain).
find "$doc" -name '*.md' ! -name netspawnd.md -size +4k -exec gzip -9n {} +
# Man pages, when make install puts any, are compressed too.
if [ -d "$root/usr/share/man" ]; then
	find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +
fi
chmod -R u+rwX,go+rX,go-w "$root"

# The control area.
ctl=$root/DEBIAN
install -d "$ctl"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control.in" >"$ctl/control"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$ctl/"
install -m 0644 "$here/triggers" "$ctl/triggers"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$ctl/conffiles"
chmod 0644 "$ctl/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$ctl/md5sums"
chmod 0644 "$ctl/md5sums"

mkdir -p "$out"
deb=$out/netspawn_${debver}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
