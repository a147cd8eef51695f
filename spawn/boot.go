package spawn

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/proc"
)

// initCandidates are where -b looks for the OS's init, in order.
var initCandidates = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"}

// checkBootable refuses -b on a tree that is not an OS: nspawn requires an
// os-release file.
func checkBootable(root string) error {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("directory %s lacks /etc/os-release and /usr/lib/os-release: not an OS tree to boot (drop -b to run a command)", root)
}

// findInit returns the init to run, resolved in the container's root (call
// after pivot_root).
func findInit() (string, error) {
	for _, p := range initCandidates {
		if proc.IsExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no init found in the container (looked for %s); install systemd in the tree, or run a command without -b",
		strings.Join(initCandidates, ", "))
}

// containerUUID picks the container_uuid passed to the payload: --uuid,
// else the tree's /etc/machine-id, else a random one. systemd inside uses it
// as the machine ID when /etc/machine-id is empty.
func containerUUID(cfg *config.Config) string {
	if id := normalizeID(cfg.UUID); id != "" {
		return formatUUID(id)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Directory, "etc/machine-id")); err == nil {
		if id := normalizeID(strings.TrimSpace(string(b))); id != "" {
			return formatUUID(id)
		}
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	r[6] = r[6]&0x0f | 0x40 // version 4
	r[8] = r[8]&0x3f | 0x80 // variant
	return formatUUID(hex.EncodeToString(r[:]))
}

// normalizeID accepts a machine ID or UUID and returns its 32 lower-case
// hex digits, or "" if it is neither (or all zero).
func normalizeID(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if len(s) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(s); err != nil || s == strings.Repeat("0", 32) {
		return ""
	}
	return s
}

func formatUUID(id string) string {
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}
