package spawn

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"

	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/mountpoint"
	"github.com/netspawn/netspawn/spawn/internal/plan"

	"golang.org/x/sys/unix"
)

// apiMountSteps is the container's API file systems and /run, as steps
// under root (before pivot_root): /proc with its kernel knobs read-only,
// /sys, the cgroup view, a minimal /dev (with the console when msg has
// one), /run, /tmp and /run/host. The one list both the re-executed
// netspawn and the fast path's raw child run (plan's package comment).
func apiMountSteps(root string, msg *initMsg) []plan.Step {
	cfg := msg.Config
	const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV
	p := func(s string) string { return inRoot(root, s) }
	var s []plan.Step
	add := func(st ...plan.Step) { s = append(s, st...) }
	mnt := func(src, dst, fstype string, flags uintptr, data string) plan.Step {
		return plan.Step{Kind: plan.Mount, Src: src, Path: dst, FSType: fstype, Flags: flags, Data: data}
	}
	dir := func(d string, mode uint32) plan.Step { return plan.Step{Kind: plan.Mkdir, Path: d, Mode: mode} }

	// /proc, with the kernel knobs read-only as nspawn does (unless
	// $SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes).
	vfsRW := cfg.APIVFSWritable == "yes"
	add(dir(p("/proc"), 0o555), mnt("proc", p("/proc"), "proc", nosuidNodev|unix.MS_NOEXEC, ""))
	if !vfsRW {
		for _, sub := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
			bind := mnt(p(sub), p(sub), "", unix.MS_BIND|unix.MS_REC, "")
			bind.IfExists = true
			add(bind, plan.Step{Kind: plan.ReadOnly, Path: p(sub), Recursive: true, IfExists: true})
		}
	}
	if (cfg.Network.Private || cfg.APIVFSWritable == "network") && !vfsRW {
		// The container owns its network namespace: let it tune it.
		net := p("/proc/sys/net")
		bind := mnt(net, net, "", unix.MS_BIND, "")
		bind.IgnoreErr = true
		add(bind, plan.Step{Kind: plan.ReadOnly, Path: net, Clr: unix.MOUNT_ATTR_RDONLY, IgnoreErr: true, AfterOK: true})
	}
	// Hide kernel memory and logs.
	for _, f := range []string{"/proc/kcore", "/proc/kmsg", "/proc/keys", "/proc/timer_list", "/proc/kallsyms"} {
		hide := mnt("/dev/null", p(f), "", unix.MS_BIND, "")
		hide.IfExists, hide.IgnoreErr = true, true
		add(hide)
	}

	// /sys, read-only.
	add(dir(p("/sys"), 0o555), plan.Step{Kind: plan.Sysfs, Path: p("/sys"), Writable: vfsRW})

	if msg.CgroupMode != "" && cfg.NoCgroupNS {
		// No cgroup namespace ($SYSTEMD_NSPAWN_USE_CGNS=0): the host's whole
		// hierarchy, where the container's processes see their full paths,
		// as nspawn gives it then. Bound, not mounted anew: a cgroup2 mount
		// made in the host's cgroup namespace resets the host's mount
		// options (nsdelegate, memory_recursiveprot) to its own.
		if host := cgroup.V2Root(); host != "" {
			add(mnt(host, p("/sys/fs/cgroup"), "", unix.MS_BIND|unix.MS_REC, ""))
			if msg.CgroupMode == "ro" {
				add(plan.Step{Kind: plan.ReadOnly, Path: p("/sys/fs/cgroup"), Recursive: true})
			}
		}
	} else if msg.CgroupMode != "" {
		// The container's cgroup namespace root, as a cgroup2 file system.
		flags := uintptr(nosuidNodev | unix.MS_NOEXEC)
		if msg.CgroupMode == "ro" {
			flags |= unix.MS_RDONLY
		}
		add(mnt("cgroup2", p("/sys/fs/cgroup"), "cgroup2", flags, "nsdelegate"))
	}

	// -L labels the tmpfs and devpts mounts (selinux.go).
	label := cfg.SELinuxAPIFSContext
	add(devSteps(root, msg.ConsolePath, label)...)
	add(extraNodeSteps(root, cfg.ExtraDevices)...)

	// /run and /tmp.
	add(dir(p("/run"), 0o755), mnt("tmpfs", p("/run"), "tmpfs", nosuidNodev, withContext("mode=0755,size=20%,nr_inodes=800k", label)))
	if !cfg.NoTmpfsTmp { // $SYSTEMD_NSPAWN_TMPFS_TMP=0 keeps the image's /tmp
		add(dir(p("/tmp"), 0o755), mnt("tmpfs", p("/tmp"), "tmpfs", nosuidNodev, withContext("mode=01777,size=50%,nr_inodes=400k", label)))
	}
	add(runHostSteps(root, cfg.Service())...)
	return s
}

type devNode struct {
	name         string
	major, minor uint32
}

var devNodes = []devNode{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// devSteps builds a minimal /dev: the basic character devices, a private
// devpts, /dev/shm, /dev/mqueue and the console; label is -L's context.
func devSteps(root, console, label string) []plan.Step {
	dev := inRoot(root, "/dev")
	s := []plan.Step{
		{Kind: plan.Mkdir, Path: dev, Mode: 0o755},
		{Kind: plan.Mount, Src: "tmpfs", Path: dev, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: withContext("mode=0755,size=4m,nr_inodes=64k", label)},
	}
	for _, n := range devNodes {
		// Without mknod (e.g. a restricted host), the host's node is bound.
		s = append(s, plan.Step{Kind: plan.Mknod, Path: dev + "/" + n.name, Mode: 0o666, Dev: unix.Mkdev(n.major, n.minor), Src: "/dev/" + n.name})
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		s = append(s, plan.Step{Kind: plan.MkdirNew, Path: dev + "/" + d, Mode: 0o755})
	}
	s = append(s,
		plan.Step{Kind: plan.Mount, Src: "devpts", Path: dev + "/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC,
			Data: withContext("newinstance,ptmxmode=0666,mode=620,gid=5", label)},
		plan.Step{Kind: plan.Mount, Src: "tmpfs", Path: dev + "/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME, Data: withContext("mode=01777", label)},
		plan.Step{Kind: plan.Mount, Src: "mqueue", Path: dev + "/mqueue", FSType: "mqueue", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	)
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		s = append(s, plan.Step{Kind: plan.Symlink, Src: l[0], Path: dev + "/" + l[1]})
	}
	if console != "" {
		// The console is the pty netspawn forwards (also our stdin).
		s = append(s, plan.Step{Kind: plan.MkFile, Path: dev + "/console"},
			plan.Step{Kind: plan.Mount, Src: console, Path: dev + "/console", Flags: unix.MS_BIND})
	}
	return s
}

// extraNodeSteps makes the device nodes an OCI bundle's linux.devices asks
// for, with their parent directories, as nspawn does: exactly the mode and
// owner given.
func extraNodeSteps(root string, nodes []config.DeviceNode) []plan.Step {
	var s []plan.Step
	for _, n := range nodes {
		var parents []string
		for d := path.Dir(n.Path); d != "/"; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			s = append(s, plan.Step{Kind: plan.Mkdir, Path: inRoot(root, parents[i]), Mode: 0o755})
		}
		uid, gid := uint32(math.MaxUint32), uint32(math.MaxUint32)
		if n.UID != nil {
			uid = *n.UID
		}
		if n.GID != nil {
			gid = *n.GID
		}
		s = append(s, plan.Step{Kind: plan.Mknod, Path: inRoot(root, n.Path), Mode: n.FileType() | n.Mode,
			Dev: unix.Mkdev(n.Major, n.Minor), Chown: true, UID: uid, GID: gid,
			Context: "OCI bundle linux.devices (" + n.Path + ")"})
	}
	return s
}

// runHostSteps fills /run/host (the container interface systemd documents)
// and /run/systemd/container, in the container's fresh /run.
func runHostSteps(root, service string) []plan.Step {
	s := []plan.Step{
		{Kind: plan.Mkdir, Path: inRoot(root, "/run/host"), Mode: 0o755},
		{Kind: plan.WriteFile, Path: inRoot(root, "/run/host/container-manager"), Data: service + "\n", Mode: 0o444},
		{Kind: plan.Mkdir, Path: inRoot(root, "/run/systemd"), Mode: 0o755},
		{Kind: plan.WriteFile, Path: inRoot(root, "/run/systemd/container"), Data: service + "\n", Mode: 0o444},
	}
	for _, src := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(src); err == nil {
			s = append(s, plan.Step{Kind: plan.WriteFile, Path: inRoot(root, "/run/host/os-release"), Data: string(b), Mode: 0o444, IgnoreErr: true})
			break
		}
	}
	return s
}

// notifyStep binds the notification socket (descriptor fd, netspawn's
// other end) at /run/host/notify in the container's fresh /run, as
// nspawn's setup_notify_child: owned by the container's root (who binds
// it), mode 0755, so that only root may send (and netspawn heeds only
// PID 1). Entering the directory keeps the name short of sun_path's limit
// whatever the tree's path.
func notifyStep(root string, fd int) plan.Step {
	dir, name := filepath.Split(inRoot(root, notifySocketPath))
	return plan.Step{Kind: plan.BindSocket, Path: filepath.Clean(dir), Data: name, Arg: uintptr(fd), Mode: 0o755}
}

func bindSocket(st *plan.Step) error {
	err := func() error {
		if err := unix.Chdir(st.Path); err != nil {
			return err
		}
		_ = unix.Unlink(st.Data)
		if err := unix.Bind(int(st.Arg), &unix.SockaddrUnix{Name: st.Data}); err != nil {
			return err
		}
		return unix.Fchmodat(unix.AT_FDCWD, st.Data, st.Mode, 0)
	}()
	unix.Close(int(st.Arg))
	if err != nil {
		return fmt.Errorf("binding the notification socket %s/%s: %w", st.Path, st.Data, err)
	}
	return nil
}

// runSteps runs steps with Go, in the re-executed netspawn.
func runSteps(steps []plan.Step) error {
	prevFailed := false
	for i := range steps {
		st := &steps[i]
		if st.AfterOK && prevFailed {
			continue
		}
		if st.IfExists {
			if _, err := os.Stat(st.Path); err != nil {
				prevFailed = false
				continue
			}
		}
		err := runStep(st)
		prevFailed = err != nil
		if err != nil && !st.IgnoreErr {
			if st.Context != "" {
				return fmt.Errorf("%s: %w", st.Context, err)
			}
			return err
		}
	}
	return nil
}

func runStep(st *plan.Step) error {
	switch st.Kind {
	case plan.Mount:
		return mount(st.Src, st.Path, st.FSType, st.Flags, st.Data)
	case plan.ReadOnly:
		if st.Set == 0 && st.Clr == 0 {
			return makeReadOnly(st.Path, st.Recursive)
		}
		flags := 0
		if st.Recursive {
			flags = unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(unix.AT_FDCWD, st.Path, uint(flags), &unix.MountAttr{Attr_set: st.Set, Attr_clr: st.Clr}); err != nil {
			return fmt.Errorf("changing the attributes of %s: %w", st.Path, err)
		}
		return nil
	case plan.Mkdir:
		return mountpoint.Dir(st.Path, os.FileMode(st.Mode))
	case plan.MkdirNew:
		if err := os.Mkdir(st.Path, os.FileMode(st.Mode)); err != nil {
			return fmt.Errorf("creating %s: %w", st.Path, err)
		}
		return nil
	case plan.MkFile:
		return mountpoint.File(st.Path)
	case plan.Mknod:
		mode := st.Mode
		if mode&unix.S_IFMT == 0 {
			mode |= unix.S_IFCHR
		}
		err := unix.Mknod(st.Path, mode, int(st.Dev))
		if err == nil && st.Chown {
			if err = unix.Fchmodat(unix.AT_FDCWD, st.Path, mode&0o7777, 0); err == nil {
				err = unix.Fchownat(unix.AT_FDCWD, st.Path, int(int32(st.UID)), int(int32(st.GID)), unix.AT_SYMLINK_NOFOLLOW)
			}
		}
		if err == nil {
			return nil
		}
		if st.Src == "" {
			return fmt.Errorf("creating device node %s: %w", st.Path, err)
		}
		if err := mountpoint.File(st.Path); err != nil {
			return err
		}
		return mount(st.Src, st.Path, "", unix.MS_BIND, "")
	case plan.Symlink:
		if err := os.Symlink(st.Src, st.Path); err != nil {
			return fmt.Errorf("creating %s: %w", st.Path, err)
		}
		return nil
	case plan.WriteFile:
		if err := os.WriteFile(st.Path, []byte(st.Data), os.FileMode(st.Mode)); err != nil {
			return fmt.Errorf("writing %s: %w", st.Path, err)
		}
		return nil
	case plan.Sysfs:
		return mountSysfs(st.Path, st.Writable)
	case plan.BindSocket:
		return bindSocket(st)
	}
	return errors.New("container set-up: a step the re-executed init does not run")
}
