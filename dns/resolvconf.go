package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// MaxUpstreams is the number of upstream resolvers used, as glibc's
// MAXNS: more would only add timeouts before the client gives up.
const MaxUpstreams = 3

// ParseResolvConf returns the nameserver addresses (port 53) listed in a
// resolv.conf, in order. Malformed lines are ignored, as glibc does.
func ParseResolvConf(r io.Reader) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.IsUnspecified() {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	return out
}

// upstreamFile follows a resolv.conf file: it re-reads it when its
// modification time or size changes, checked at most once a second.
type upstreamFile struct {
	path string

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	ino     uint64
	servers []netip.AddrPort
	err     error
}

func (u *upstreamFile) get(now time.Time) ([]netip.AddrPort, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.checked.IsZero() && now.Sub(u.checked) < time.Second && now.After(u.checked) {
		return u.servers, u.err
	}
	u.checked = now
	st, err := os.Stat(u.path)
	if err != nil {
		u.servers, u.err = nil, fmt.Errorf("resolv.conf: %w", err)
		u.mtime, u.size = time.Time{}, -1
		return nil, u.err
	}
	ino := inode(st)
	if u.err == nil && st.ModTime().Equal(u.mtime) && st.Size() == u.size && ino == u.ino && u.servers != nil {
		return u.servers, nil
	}
	data, err := os.ReadFile(u.path)
	if err != nil {
		u.servers, u.err = nil, fmt.Errorf("resolv.conf: %w", err)
		return nil, u.err
	}
	u.mtime, u.size, u.ino = st.ModTime(), st.Size(), ino
	u.servers, u.err = ParseResolvConf(bytes.NewReader(data)), nil
	if u.servers == nil {
		u.servers = []netip.AddrPort{}
	}
	return u.servers, nil
}
