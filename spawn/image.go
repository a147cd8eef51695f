package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/dissect"
	"github.com/netspawn/netspawn/spawn/idmap"

	"golang.org/x/sys/unix"
)

// A disk image (-i) becomes the container's root this way:
//
//   - dissect (package spawn/dissect) reads its partition table through
//     the file and applies the image policy;
//   - each partition to mount gets a loop device of its own, configured
//     with LOOP_CONFIGURE at the partition's offset and size. That needs
//     no partition scanning: partition nodes (/dev/loopNpM) appear only
//     after the kernel's asynchronous scan, and some hosts have no udev to
//     make them; the offsets are those the policy was checked against;
//   - every loop device has LO_FLAGS_AUTOCLEAR: the kernel detaches it once
//     its last user is gone. Its users are netspawn's open descriptors and
//     the mounts, and every mount is detached (fsmount) or in the
//     container's mount namespace, never in the host's. So when netspawn
//     ends, also by SIGKILL (the container gets SIGKILL with it,
//     Pdeathsig), the mounts go with the namespace and the loop devices
//     with their last descriptor.
//
// The parent keeps one detached mount of the root partition (an empty
// tmpfs for an image with a /usr partition and no root partition) to look
// at the tree (/usr, init, machine-id) and to be the lower layer of -x; each
// start of the container gets fresh mounts of every partition, which the
// container's first process attaches (storage.go's placements).

// diskImage is an attached disk image.
type diskImage struct {
	path  string
	file  *os.File
	img   *dissect.Image
	parts []*imagePart // in mount order, the root first
	base  int          // the parent's detached mount of the root, -1 when none
	// writable: the partitions are mounted read-write (unless flagged
	// read-only).
	writable bool
}

type imagePart struct {
	p      *dissect.Partition
	loop   *os.File // the loop device, or the verity device, held open
	dev    string   // /dev/loopN, or /dev/mapper/NAME
	ro     bool
	verity *dissect.Verity // the partition's dm-verity, nil for none
	vdev   *verityDevice
}

// attachImage dissects cfg.Image, checks it against the image policy, and
// attaches and mounts its partitions.
func attachImage(cfg *config.Config) (_ *diskImage, err error) {
	policy, err := cfg.Policy()
	if err != nil {
		return nil, err
	}
	vs, err := dissect.LoadVerity(dissect.VerityInput{Image: cfg.Image, RootHash: cfg.RootHash, RootHashSig: cfg.RootHashSig, VerityData: cfg.VerityData})
	if err != nil {
		return nil, fmt.Errorf("disk image %s: %w", cfg.Image, err)
	}
	// --volatile= keeps the image read-only too (state: as --read-only,
	// overlay: under a tmpfs layer).
	writable := !cfg.ReadOnly && !cfg.Ephemeral && cfg.Volatile == config.VolatileNo
	flags := os.O_RDONLY
	if writable {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(cfg.Image, flags|syscall.O_CLOEXEC, 0)
	if writable && (errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
		writable = false
		f, err = os.OpenFile(cfg.Image, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	d := &diskImage{path: cfg.Image, file: f, base: -1}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if ro, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKROGET); err == nil && ro != 0 {
		// A read-only block device opens for writing too; its writes fail.
		writable = false
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o222 == 0 {
		// Root may write to any file: a raw image without write bits is
		// read-only by netspawnctl's (and machinectl's) rule.
		writable = false
	}
	size, err := imageSize(f)
	if err != nil {
		return nil, fmt.Errorf("disk image %s: %w", cfg.Image, err)
	}
	d.img, err = dissect.Dissect(f, size, dissect.Options{Policy: policy, Verity: vs})
	if err != nil {
		return nil, fmt.Errorf("disk image %s: %w", cfg.Image, err)
	}
	if d.img.VerityUnused {
		warnf(cfg.Quiet, "disk image %s has verity data, but no root hash was given (--root-hash=, %s) and it has no signature partition: using it without integrity checking",
			cfg.Image, dissect.AuxiliaryPath(cfg.Image, ".roothash"))
	}
	for _, p := range d.img.Mounts() {
		if p.FSType == "crypto_LUKS" {
			return nil, fmt.Errorf("disk image %s: partition %d (%s) is LUKS-encrypted: netspawn does not unlock encrypted partitions", cfg.Image, p.Number, p.Designator)
		}
		ip := &imagePart{p: p, ro: !writable || !p.ReadWrite}
		if v := d.img.Verity; v != nil && v.Data == p.Designator {
			ip.verity, ip.ro = v, true
			if ip.vdev, err = openVerity(f, cfg.Machine, p, v); err != nil {
				return nil, fmt.Errorf("disk image %s: %w", cfg.Image, err)
			}
			ip.loop, ip.dev = ip.vdev.file, ip.vdev.path
			d.parts = append(d.parts, ip)
			continue
		}
		if ip.loop, ip.dev, err = attachLoop(f, p.Offset, p.Size, ip.ro); err != nil {
			return nil, fmt.Errorf("disk image %s: partition %s: %w", cfg.Image, p.Designator, err)
		}
		d.parts = append(d.parts, ip)
	}
	// The parent's view of the root (the lower layer of -x), read-only
	// exactly when the container's mounts are: a file system is mounted
	// read-only or read-write, not both at once. An image without a root
	// partition has an empty tmpfs for its root, as nspawn gives it.
	d.writable = writable
	if !d.img.HasRoot() {
		d.base, err = mountTmpfs("mode=0755", cfg.SELinuxAPIFSContext)
	} else {
		d.base, err = d.parts[0].mount(!writable)
	}
	if err != nil {
		return nil, fmt.Errorf("disk image %s: %w", cfg.Image, err)
	}
	return d, nil
}

// hasRoot says the image has a root partition; without one (a /usr
// partition alone) the container's root is an empty tmpfs.
func (d *diskImage) hasRoot() bool { return d.img.HasRoot() }

// checkBootable refuses -b with an image that is not an OS: as nspawn
// (DISSECT_IMAGE_VALIDATE_OS once the root and /usr are mounted), the
// os-release file is looked for in the root and /usr partitions together,
// so a link /etc/os-release -> ../usr/lib/os-release into the /usr
// partition counts.
func (d *diskImage) checkBootable() error {
	t := hostTree{"/": d.rootPath()}
	for _, p := range d.parts {
		if p.p.Designator != dissect.Usr {
			continue
		}
		fd, err := p.mount(!d.writable)
		if err != nil {
			return fmt.Errorf("disk image %s: %w", d.path, err)
		}
		defer unix.Close(fd)
		t["/usr"] = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	return checkBootable(t, "disk image "+d.path)
}

// hasUsr says the image has a /usr partition to mount.
func (d *diskImage) hasUsr() bool {
	for _, p := range d.parts {
		if p.p.Designator == dissect.Usr {
			return true
		}
	}
	return false
}

// rootPath is where the parent sees the root partition's tree.
func (d *diskImage) rootPath() string { return fmt.Sprintf("/proc/self/fd/%d", d.base) }

func (d *diskImage) close() {
	if d == nil {
		return
	}
	if d.base >= 0 {
		unix.Close(d.base)
		d.base = -1
	}
	for _, p := range d.parts {
		p.loop.Close() // autoclear detaches it once its mounts are gone too
	}
	d.parts = nil
	d.file.Close()
}

func imageSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	switch {
	case st.Mode().IsRegular():
		return st.Size(), nil
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		var n uint64
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
			return 0, fmt.Errorf("reading the device's size: %w", e)
		}
		return int64(n), nil
	}
	return 0, errors.New("not a regular file or block device")
}

// attachLoop binds a free loop device to size bytes of backing at off,
// with autoclear, and returns it open.
func attachLoop(backing *os.File, off, size int64, ro bool) (*os.File, string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("loop devices: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	flags := os.O_RDWR
	var lo uint32 = unix.LO_FLAGS_AUTOCLEAR
	if ro {
		flags = os.O_RDONLY
		lo |= unix.LO_FLAGS_READ_ONLY
	}
	for try := 0; try < 64; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, "", fmt.Errorf("finding a free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		l, err := os.OpenFile(dev, flags|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", fmt.Errorf("opening %s: %w", dev, err)
		}
		c := unix.LoopConfig{Fd: uint32(backing.Fd())}
		c.Info.Offset, c.Info.Sizelimit, c.Info.Flags = uint64(off), uint64(size), lo
		err = unix.IoctlLoopConfigure(int(l.Fd()), &c)
		if err == nil {
			return l, dev, nil
		}
		l.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, "", fmt.Errorf("configuring %s: %w", dev, err)
		}
		// Another program took it between GET_FREE and CONFIGURE: the next.
	}
	return nil, "", errors.New("no free loop device after 64 tries")
}

// mount makes a detached mount of the partition, read-only when asked or
// when the partition is.
func (p *imagePart) mount(ro bool) (int, error) {
	ro = ro || p.ro
	what := fmt.Sprintf("partition %s (%s on %s)", p.p.Designator, p.p.FSType, p.dev)
	if p.verity != nil && p.verity.Hash == nil {
		what = fmt.Sprintf("file system (%s on %s, dm-verity)", p.p.FSType, p.dev)
	} else if p.verity != nil {
		what = fmt.Sprintf("partition %s (%s on %s, dm-verity)", p.p.Designator, p.p.FSType, p.dev)
	}
	if p.p.Number == 0 {
		what = fmt.Sprintf("file system (%s on %s)", p.p.FSType, p.dev)
	}
	fs, err := unix.Fsopen(p.p.FSType, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("mounting %s: %w", what, err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "source", p.dev); err != nil {
		return -1, fmt.Errorf("mounting %s: %w", what, err)
	}
	if ro {
		if err := unix.FsconfigSetFlag(fs, "ro"); err != nil {
			return -1, fmt.Errorf("mounting %s read-only: %w", what, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		err = fsError(fs, err)
		if p.vdev != nil {
			err = p.vdev.mountError(p.p, p.verity, err)
		}
		return -1, fmt.Errorf("mounting %s: %w", what, err)
	}
	attr := 0
	if ro {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return -1, fmt.Errorf("mounting %s: %w", what, err)
	}
	return m, nil
}

// imagePlacement is where one partition of the image goes for a start.
type imagePlacement struct {
	part int    // the index in diskImage.parts (dissect.Image.Mounts order)
	dest string // the container path
	sub  string // a directory of the partition placed instead of its top; "" for all of it
}

// imagePlacements decides where the partitions ds (root first, in mount
// order) are mounted. root says the root partition is the container's
// root (no -x or --volatile=overlay layer stands for it). With
// --volatile=yes the root is a tmpfs and of the root partition only its
// /usr is used, unless a /usr partition stands for it; the partitions
// below the root (/home, /srv, /var, /var/tmp) are mounted into the tmpfs,
// as nspawn mounts them after setting up the volatile root.
func imagePlacements(ds []dissect.Designator, root, volatileYes bool) []imagePlacement {
	hasUsr := false
	for _, d := range ds {
		hasUsr = hasUsr || d == dissect.Usr
	}
	var out []imagePlacement
	for i, d := range ds {
		pl := imagePlacement{part: i, dest: dissect.MountPoint(d)}
		if d == dissect.Root {
			switch {
			case volatileYes && hasUsr:
				continue
			case volatileYes:
				pl.dest, pl.sub = "/usr", "usr"
			case !root:
				continue
			}
		}
		out = append(out, pl)
	}
	return out
}

// placeImage adds this start's mounts of the image: the root (unless an
// -x overlay or --volatile= tmpfs stands for it) and the partitions below
// it, with -x each under an overlay of its own.
func (s *storageState) placeImage(root bool) error {
	d := s.image
	ds := make([]dissect.Designator, len(d.parts))
	for i, p := range d.parts {
		ds[i] = p.p.Designator
	}
	for _, pl := range imagePlacements(ds, root, s.cfg.Volatile == config.VolatileYes) {
		p := d.parts[pl.part]
		fd, err := s.imageMount(p, s.cfg.ReadOnly || s.cfg.Ephemeral || s.cfg.Volatile != config.VolatileNo)
		if err != nil {
			return fmt.Errorf("disk image %s: %w", d.path, err)
		}
		if p.p.Designator != dissect.Root && s.ephemeral != "" {
			ofd, err := s.overlayPartition(p, fd)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("--ephemeral: disk image %s: partition %s: %w", d.path, p.p.Designator, err)
			}
			fd = ofd
		}
		s.add(fd, pl.dest, false)
		s.msg.Mounts[len(s.msg.Mounts)-1].Sub = pl.sub
	}
	return nil
}

// imageMount mounts a partition for the container: idmapped when its
// ownership is mapped into the user namespace.
func (s *storageState) imageMount(p *imagePart, ro bool) (int, error) {
	fd, err := p.mount(ro)
	if err != nil || !s.mapped {
		return fd, err
	}
	if err := idmap.MountIDMapped(fd, s.holder.File()); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("partition %s: %w", p.p.Designator, err)
	}
	return fd, nil
}

// overlayPartition lays a throw-away upper layer (kept across reboots of
// this run, as the root's) over the read-only mount lower of a partition.
func (s *storageState) overlayPartition(p *imagePart, lower int) (int, error) {
	dir := filepath.Join(s.ephemeral, "part-"+p.p.Designator.String())
	upper := filepath.Join(dir, "upper")
	if _, err := os.Stat(upper); err != nil {
		var st unix.Stat_t
		if err := unix.Fstat(lower, &st); err != nil {
			return -1, err
		}
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return -1, fmt.Errorf("creating upper layer: %w", err)
		}
		// The overlay's root directory takes its owner and mode from here
		// (the lower layer's, as the container sees them).
		if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
			return -1, fmt.Errorf("creating upper layer: %w", err)
		}
		if err := os.Chmod(upper, os.FileMode(st.Mode&0o777)); err != nil {
			return -1, fmt.Errorf("creating upper layer: %w", err)
		}
	}
	return mountOverlayScratch([]string{fmt.Sprintf("/proc/self/fd/%d", lower)}, upper, filepath.Join(dir, "work"))
}

// checkImageTree refuses an image whose root holds no OS tree, as
// prepareDirectory does for a directory.
func checkImageTree(cfg *config.Config, d *diskImage) error {
	if d.hasUsr() {
		// The /usr partition is the OS tree (nspawn checks nothing more
		// for an image).
		return nil
	}
	if _, err := os.Lstat(filepath.Join(d.rootPath(), "usr")); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			if v := d.img.Verity; v != nil && errors.Is(err, unix.EIO) {
				return fmt.Errorf("disk image %s: reading its root: %w (dm-verity: the data does not match the root hash from %s: the image is corrupt or modified)", cfg.Image, err, v.RootHashFrom)
			}
			return fmt.Errorf("disk image %s: reading its root: %w", cfg.Image, err)
		}
		return fmt.Errorf("disk image %s doesn't look like an OS tree (/usr is missing); refusing", cfg.Image)
	}
	return nil
}
