package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/mountpoint"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"golang.org/x/sys/unix"
)

func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		what := fstype
		if flags&unix.MS_BIND != 0 {
			what = "bind mount of " + src
		}
		return fmt.Errorf("mounting %s on %s: %w", what, dst, err)
	}
	return nil
}

// makeReadOnly makes the mount at path read-only, and with recursive every
// mount below it too.
func makeReadOnly(path string, recursive bool) error {
	flags := 0
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(unix.AT_FDCWD, path, uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("making %s read-only: %w", path, err)
	}
	// Kernels before 5.12: remount the top mount, keeping its flags.
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("making %s read-only: %w", path, err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, "")
}

// inRoot joins a container path to the root directory. The container path
// may not climb out with "..".
func inRoot(root, p string) string {
	return filepath.Join(root, filepath.Clean("/"+p))
}

// setupMounts builds the container's file system under root, in the
// container's new mount namespace, before pivot_root.
func setupMounts(root string, msg *initMsg) error {
	cfg := msg.Config
	// Nothing we mount may propagate back to the host.
	if err := mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	// pivot_root needs the new root to be a mount point.
	if err := attachRoot(root, msg); err != nil {
		return err
	}

	const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV
	p := func(s string) string { return inRoot(root, s) }

	// /proc, with the kernel knobs read-only as nspawn does (unless
	// $SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes).
	vfsRW := cfg.APIVFSWritable == "yes"
	if err := mountpoint.Dir(p("/proc"), 0o555); err != nil {
		return err
	}
	if err := mount("proc", p("/proc"), "proc", nosuidNodev|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, sub := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if _, err := os.Stat(p(sub)); err != nil || vfsRW {
			continue
		}
		if err := mount(p(sub), p(sub), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := makeReadOnly(p(sub), true); err != nil {
			return err
		}
	}
	if (cfg.Network.Private || cfg.APIVFSWritable == "network") && !vfsRW {
		// The container owns its network namespace: let it tune it.
		net := p("/proc/sys/net")
		if err := mount(net, net, "", unix.MS_BIND, ""); err == nil {
			_ = unix.MountSetattr(unix.AT_FDCWD, net, 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY})
		}
	}
	// Hide kernel memory and logs.
	for _, f := range []string{"/proc/kcore", "/proc/kmsg", "/proc/keys", "/proc/timer_list", "/proc/kallsyms"} {
		if _, err := os.Stat(p(f)); err == nil {
			_ = unix.Mount("/dev/null", p(f), "", unix.MS_BIND, "")
		}
	}

	// /sys, read-only.
	if err := mountpoint.Dir(p("/sys"), 0o555); err != nil {
		return err
	}
	if err := mountSysfs(p("/sys"), vfsRW); err != nil {
		return err
	}

	if msg.CgroupMode != "" && cfg.NoCgroupNS {
		// No cgroup namespace ($SYSTEMD_NSPAWN_USE_CGNS=0): the host's whole
		// hierarchy, where the container's processes see their full paths,
		// as nspawn gives it then. Bound, not mounted anew: a cgroup2 mount
		// made in the host's cgroup namespace resets the host's mount
		// options (nsdelegate, memory_recursiveprot) to its own.
		if host := cgroup.V2Root(); host != "" {
			if err := mount(host, p("/sys/fs/cgroup"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return err
			}
			if msg.CgroupMode == "ro" {
				if err := makeReadOnly(p("/sys/fs/cgroup"), true); err != nil {
					return err
				}
			}
		}
	} else if msg.CgroupMode != "" {
		// The container's cgroup namespace root, as a cgroup2 file system.
		flags := uintptr(nosuidNodev | unix.MS_NOEXEC)
		if msg.CgroupMode == "ro" {
			flags |= unix.MS_RDONLY
		}
		if err := mount("cgroup2", p("/sys/fs/cgroup"), "cgroup2", flags, "nsdelegate"); err != nil {
			return err
		}
	}

	if err := setupDev(root, msg.ConsolePath); err != nil {
		return err
	}

	// /run and /tmp.
	if err := mountpoint.Dir(p("/run"), 0o755); err != nil {
		return err
	}
	if err := mount("tmpfs", p("/run"), "tmpfs", nosuidNodev, "mode=0755,size=20%,nr_inodes=800k"); err != nil {
		return err
	}
	if !cfg.NoTmpfsTmp { // $SYSTEMD_NSPAWN_TMPFS_TMP=0 keeps the image's /tmp
		if err := mountpoint.Dir(p("/tmp"), 0o755); err != nil {
			return err
		}
		if err := mount("tmpfs", p("/tmp"), "tmpfs", nosuidNodev, "mode=01777,size=50%,nr_inodes=400k"); err != nil {
			return err
		}
	}
	if err := writeRunHost(root, cfg.Service()); err != nil {
		return err
	}

	// The user's binds and tmpfs mounts, in order.
	for i, b := range cfg.Binds {
		if placed, err := placeBind(root, msg, i); err != nil {
			return err
		} else if placed {
			continue // the parent made it (user namespaces: storage.go)
		}
		src := b.Source
		switch {
		case b.SourceInRoot:
			src = p(b.Source)
		case src == "":
			src = msg.TempBinds[i]
		}
		if err := bindMount(src, p(b.Dest), b); err != nil {
			return err
		}
	}
	for _, t := range cfg.Tmpfs {
		dst := p(t.Dest)
		if err := mountpoint.Dir(dst, 0o755); err != nil {
			return err
		}
		opts := t.Options
		if opts == "" {
			opts = "mode=0755"
		}
		flags, data := tmpfsOptions(opts)
		if err := mount("tmpfs", dst, "tmpfs", flags, data); err != nil {
			return fmt.Errorf("--tmpfs=%s: %w", t.Dest, err)
		}
	}
	return attachLate(root, msg)
}

// tmpfsOptions splits generic mount flags out of a tmpfs option string.
func tmpfsOptions(opts string) (uintptr, string) {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	var data []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw":
		case "suid":
			flags &^= unix.MS_NOSUID
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "dev":
			flags &^= unix.MS_NODEV
		case "nodev":
			flags |= unix.MS_NODEV
		case "exec":
		case "noexec":
			flags |= unix.MS_NOEXEC
		default:
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

func bindMount(src, dst string, b config.BindMount) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", src, err)
	}
	if st.IsDir() {
		err = mountpoint.Dir(dst, 0o755)
	} else {
		err = mountpoint.File(dst)
	}
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if b.Recursive {
		flags |= unix.MS_REC
	}
	if err := mount(src, dst, "", flags, ""); err != nil {
		return err
	}
	if b.ReadOnly {
		return makeReadOnly(dst, b.Recursive)
	}
	return nil
}

type devNode struct {
	name         string
	major, minor uint32
}

var devNodes = []devNode{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// setupDev builds a minimal /dev: the basic character devices, a private
// devpts, /dev/shm, /dev/mqueue and the console.
func setupDev(root string, console string) error {
	dev := inRoot(root, "/dev")
	if err := mountpoint.Dir(dev, 0o755); err != nil {
		return err
	}
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=0755,size=4m,nr_inodes=64k"); err != nil {
		return err
	}
	for _, n := range devNodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			// Without mknod (e.g. a restricted host), bind the host's node.
			if err := mountpoint.File(p); err != nil {
				return err
			}
			if err := mount("/dev/"+n.name, p, "", unix.MS_BIND, ""); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", d, err)
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=620,gid=5"); err != nil {
		return err
	}
	if err := mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=01777"); err != nil {
		return err
	}
	if err := mount("mqueue", filepath.Join(dev, "mqueue"), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	if console != "" {
		// The console is the pty netspawn forwards (also our stdin).
		p := filepath.Join(dev, "console")
		if err := mountpoint.File(p); err != nil {
			return err
		}
		if err := mount(console, p, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

// writeRunHost fills /run/host (the container interface systemd documents)
// and /run/systemd/container.
func writeRunHost(root, service string) error {
	files := map[string]string{
		"/run/host/container-manager": service + "\n",
		"/run/systemd/container":      service + "\n",
	}
	for p, content := range files {
		full := inRoot(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(full, []byte(content), 0o444); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	for _, src := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(src); err == nil {
			_ = os.WriteFile(inRoot(root, "/run/host/os-release"), b, 0o444)
			break
		}
	}
	return nil
}

// pivotRoot makes root the container's / and detaches the host's tree.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	return nil
}
