// Package ula picks the IPv6 prefixes of container links: a unique local
// /48 chosen at random once per host (RFC 4193) and kept in the state dir,
// a /64 of it per link, and the container's address inside a /64 derived
// from its MAC (modified EUI-64), so the controller knows it without
// asking. It is pure except for LoadOrCreate, which reads and writes one
// file.
package ula

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/internal/atomicfile"
)

// ULA is the unique local address range, fc00::/7, of which fd00::/8
// holds the locally assigned prefixes.
var (
	ULA   = netip.MustParsePrefix("fc00::/7")
	Local = netip.MustParsePrefix("fd00::/8")
)

// LinkBits is the size of one link's prefix (SLAAC needs a /64).
const LinkBits = 64

// Generate returns a random fdXX:XXXX:XXXX::/48 from r (crypto/rand when
// nil): the 40-bit global ID of RFC 4193.
func Generate(r io.Reader) (netip.Prefix, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	b[0] = 0xfd
	if _, err := io.ReadFull(r, b[1:6]); err != nil {
		return netip.Prefix{}, fmt.Errorf("random ULA global ID: %w", err)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 48), nil
}

// CheckBase validates a prefix to carve link /64s from.
func CheckBase(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("IPv6 prefix %s: not an IPv6 prefix", p)
	}
	if p.Bits() > LinkBits {
		return fmt.Errorf("IPv6 prefix %s: longer than /%d", p, LinkBits)
	}
	if p.Bits() < 16 {
		return fmt.Errorf("IPv6 prefix %s: shorter than /16", p)
	}
	return nil
}

// LoadOrCreate returns the prefix stored in path, or generates a ULA /48,
// stores it and returns it. A valid configured prefix wins and is not
// stored.
func LoadOrCreate(path string, configured netip.Prefix) (netip.Prefix, error) {
	if configured.IsValid() {
		return configured.Masked(), CheckBase(configured)
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		p, err := netip.ParsePrefix(strings.TrimSpace(string(b)))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: %w", path, err)
		}
		return p.Masked(), CheckBase(p)
	case !errors.Is(err, fs.ErrNotExist):
		return netip.Prefix{}, fmt.Errorf("read %s: %w", path, err)
	}
	p, err := Generate(nil)
	if err != nil {
		return p, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return p, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.WriteFile(path, []byte(p.String()+"\n"), 0o644); err != nil {
		return p, fmt.Errorf("store the ULA prefix: %w", err)
	}
	return p, nil
}

// nth returns the n-th /64 of base.
func nth(base netip.Prefix, n uint64) netip.Prefix {
	a := base.Masked().Addr().As16()
	hi := binary.BigEndian.Uint64(a[:8])
	hi |= n
	binary.BigEndian.PutUint64(a[:8], hi)
	return netip.PrefixFrom(netip.AddrFrom16(a), LinkBits)
}

// Subnet picks owner's /64 inside base: it starts at a slot derived from
// the owner's name (so a host picks the same one again) and probes on,
// skipping slot 0 and every prefix for which taken returns true (already
// given to another owner, or routed on the host). ok is false when base is
// full.
func Subnet(base netip.Prefix, owner string, taken func(netip.Prefix) bool) (netip.Prefix, bool) {
	base = base.Masked()
	free := LinkBits - base.Bits()
	if free == 0 {
		if taken != nil && taken(base) {
			return netip.Prefix{}, false
		}
		return base, true
	}
	slots := uint64(1) << free
	if free > 16 {
		slots = 1 << 16 // probe at most 65536 slots
	}
	h := fnv.New64a()
	h.Write([]byte(owner))
	start := h.Sum64() % slots
	for i := range slots {
		n := (start + i) % slots
		if n == 0 {
			continue
		}
		p := nth(base, n)
		if taken == nil || !taken(p) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Gateway is the host side's address in a link prefix: ::1.
func Gateway(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	a[15] = 1
	return netip.AddrFrom16(a)
}

// EUI64 returns the address SLAAC forms in the /64 p for an interface with
// the 48-bit MAC mac: the modified EUI-64 interface identifier (RFC 4291
// appendix A: ff:fe in the middle, the universal/local bit flipped).
func EUI64(p netip.Prefix, mac net.HardwareAddr) (netip.Addr, error) {
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("EUI-64 needs a 48-bit MAC, got %q", mac)
	}
	if p.Bits() > LinkBits || !p.Addr().Is6() {
		return netip.Addr{}, fmt.Errorf("EUI-64 needs an IPv6 prefix of at most /64, got %s", p)
	}
	a := p.Masked().Addr().As16()
	a[8] = mac[0] ^ 0x02
	a[9], a[10] = mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a), nil
}

// Overlaps reports whether p overlaps any of in.
func Overlaps(p netip.Prefix, in []netip.Prefix) bool {
	for _, q := range in {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// IsULA reports whether every address of p is unique local (fc00::/7):
// such prefixes need masquerading to reach the internet.
func IsULA(p netip.Prefix) bool { return ULA.Contains(p.Addr()) && p.Bits() >= ULA.Bits() }
