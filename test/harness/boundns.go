package harness

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// BindNetNS makes a network namespace held by a bind mount on file p, as
// `ip netns add` does under /run/netns and as CNI runtimes hand them to
// plugins, with loopback up. UnbindNetNS removes it.
func BindNetNS(p string) error {
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return err
	}
	// util-linux's unshare makes and binds it from a process of its own:
	// doing it on a thread of this process could leave the main thread in
	// the new namespace (a locked goroutine that ends on the main thread
	// wedges it there), and then /proc/self/ns/net would be the new one.
	if out, err := exec.Command("unshare", "--net="+p, "true").CombinedOutput(); err != nil {
		_ = os.Remove(p)
		return fmt.Errorf("unshare --net=%s: %v: %s", p, err, out)
	}
	if out, err := exec.Command("nsenter", "--net="+p, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		UnbindNetNS(p)
		return fmt.Errorf("lo up in %s: %v: %s", p, err, out)
	}
	return nil
}

// UnbindNetNS kills what runs in the namespace bound on p (by PID),
// unmounts it and removes the file.
func UnbindNetNS(p string) {
	var st unix.Stat_t
	var fs unix.Statfs_t
	if unix.Stat(p, &st) == nil && unix.Statfs(p, &fs) == nil && fs.Type == unix.NSFS_MAGIC {
		for _, pid := range pidsInNetNS(st.Ino) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	_ = unix.Unmount(p, unix.MNT_DETACH)
	_ = os.Remove(p)
}
