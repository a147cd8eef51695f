package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// InitArg0 is argv[0] of the re-executed netspawn that becomes the
// container's init; run with its setup pipe as fd 3, it blocks reading it
// (also used to hold a user namespace open).
const InitArg0 = "netspawn-init"

// DefaultPath is the PATH the payload starts with, as systemd-nspawn sets it.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SetEnv sets kv (NAME=VALUE) in env, replacing an earlier NAME.
func SetEnv(env []string, name, kv string) []string {
	for i, e := range env {
		if n, _, _ := strings.Cut(e, "="); n == name {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// EnvValue returns the value of name in env, or "".
func EnvValue(env []string, name string) string {
	for _, e := range env {
		if n, v, ok := strings.Cut(e, "="); ok && n == name {
			return v
		}
	}
	return ""
}

// IsExecutable reports whether p is a regular file with an execute bit.
func IsExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// FindExecutable resolves the payload inside the container.
func FindExecutable(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		st, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("command %s not found in the container: %w", name, err)
		}
		if st.IsDir() {
			return "", fmt.Errorf("command %s in the container is a directory", name)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if IsExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in the container (searched PATH=%s)", name, path)
}

// LastCap is the highest capability number the kernel knows (read once).
var LastCap = sync.OnceValue(lastCap)

func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 40
}
