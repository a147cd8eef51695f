#!/bin/sh
# Maps what `git describe --tags --always --dirty` printed to a Debian
# version (upstream part, then the package revision -1):
#   v1.2.3               1.2.3-1
#   v1.2.3-4-gabc1234    1.2.3+git4.abc1234-1          (after 1.2.3)
#   abc1234 (no tag)     0~gitDATE.abc1234-1           (before any release)
#   ...-dirty            ...+dirty-1 (~dirty for 0~git versions)
#   devel                0~devel-1
# DATE (YYYYMMDD, the commit's) is the second argument; it keeps untagged
# builds in order.
set -eu
desc=${1:?usage: version.sh GIT-DESCRIBE [YYYYMMDD]}
date=${2:-00000000}
dirty=""
case $desc in
*-dirty) dirty=1; desc=${desc%-dirty} ;;
esac
case $desc in
devel) v=0~devel ;;
v[0-9]* | [0-9]*.*)
	desc=${desc#v}
	if printf '%s\n' "$desc" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
		hash=${desc##*-g}
		rest=${desc%-g*}
		n=${rest##*-}
		base=${rest%-*}
		v=$base+git$n.$hash
	else
		v=$desc
	fi
	[ -z "$dirty" ] || v=$v+dirty
	;;
*)
	printf '%s\n' "$desc" | grep -Eq '^[0-9a-f]{4,40}$' || {
		echo "version.sh: cannot map $desc to a Debian version" >&2
		exit 1
	}
	v=0~git$date.$desc
	[ -z "$dirty" ] || v=$v~dirty
	;;
esac
# Debian allows [A-Za-z0-9.+~] in the upstream part of a version with a
# revision (no '-'; a tag's own - and _ become ~ and . ).
v=$(printf '%s' "$v" | tr -- '-_' '~.')
printf '%s' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$' || {
	echo "version.sh: $v is not a valid Debian upstream version" >&2
	exit 1
}
echo "$v-1"
