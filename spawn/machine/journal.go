package machine

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// JournalSource is where a machine's journal is read from.
type JournalSource struct {
	Leader   int    // host PID of the running machine's PID 1 (0: not running)
	ImageDir string // the machine's tree, for a machine that is not running ("": none)
	HostDir  string // the host's journal directory (config.HostJournalDir)
}

// JournalArgs returns journalctl's options that select a machine's journal,
// as `journalctl -M NAME` does: a running machine's root (its
// /var/log/journal and /run/log/journal, seen through /proc/PID/root, which
// includes a journal bound from the host with --link-journal=host); for a
// machine that is not running, the host's HOSTDIR/MACHINE-ID when
// --link-journal=host kept it there, else the image's own tree.
func JournalArgs(src JournalSource) ([]string, error) {
	if src.Leader > 0 {
		return []string{"--root=/proc/" + strconv.Itoa(src.Leader) + "/root"}, nil
	}
	if src.ImageDir == "" {
		return nil, errors.New("the machine is not running and has no image to read a journal from")
	}
	if id := treeMachineID(src.ImageDir); id != "" && src.HostDir != "" {
		p := filepath.Join(src.HostDir, id)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return []string{"--directory=" + p}, nil
		}
	}
	return []string{"--root=" + src.ImageDir}, nil
}

// treeMachineID is a tree's /etc/machine-id ("" when it has none).
func treeMachineID(tree string) string {
	b, err := os.ReadFile(filepath.Join(tree, "etc/machine-id"))
	if err != nil {
		return ""
	}
	id := strings.ToLower(strings.TrimSpace(string(b)))
	if _, err := hex.DecodeString(id); err != nil || len(id) != 32 || id == strings.Repeat("0", 32) {
		return ""
	}
	return id
}

// Journalctl finds systemd's journalctl, which reads the journal files.
func Journalctl() (string, error) {
	p, err := exec.LookPath("journalctl")
	if err != nil {
		return "", fmt.Errorf("journalctl not found in $PATH: netspawnctl journal reads a machine's journal with systemd's journalctl; install it (on Debian and Ubuntu: apt-get install systemd), or read the files under the machine's /var/log/journal with a journalctl elsewhere")
	}
	return p, nil
}
