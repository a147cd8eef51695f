package idmap

import (
	"errors"

	"github.com/netspawn/netspawn/spawn/config"
)

// OwnerRange is the 64K-aligned range a tree whose root is owned by uid/gid
// belongs to, and whether that is a consistent container range.
func OwnerRange(uid, gid uint32) (uint32, bool) {
	base := uid &^ (config.UIDRangeSize - 1)
	return base, uid == gid && uid&(config.UIDRangeSize-1) == 0
}

// ErrNoFreeRange is returned when every candidate range is in use.
var ErrNoFreeRange = errors.New("no free 64K UID range left between 524288 and 1878982656")

// rangeCandidates yields the starts of ranges to try for machine name,
// in order: the hashed one first, then the next ones (wrapping).
func rangeCandidates(hash uint64) func(yield func(uint32) bool) {
	slots := uint64(config.UIDPickMax-config.UIDPickMin) / config.UIDRangeSize
	first := hash % slots
	return func(yield func(uint32) bool) {
		for i := uint64(0); i < slots; i++ {
			s := (first + i) % slots
			if !yield(uint32(config.UIDPickMin + s*config.UIDRangeSize)) {
				return
			}
		}
	}
}

// rangesOverlap reports whether [a, a+na) and [b, b+nb) overlap.
func rangesOverlap(a, na, b, nb uint32) bool {
	return uint64(a) < uint64(b)+uint64(nb) && uint64(b) < uint64(a)+uint64(na)
}

// ShiftID moves id from the range starting at from to the one starting at
// to; IDs outside [from, from+n) are left unchanged (ok false).
func ShiftID(id, from, to, n uint32) (uint32, bool) {
	if id < from || uint64(id) >= uint64(from)+uint64(n) {
		return id, false
	}
	return to + (id - from), true
}
