package spawn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/spawn/dissect"

	"golang.org/x/sys/unix"
)

// dm-verity for disk images, the way systemd-nspawn does it through
// libcryptsetup: the data partition and its hash tree get a read-only
// loop device each (autoclear, as every partition), veritysetup (Debian's
// cryptsetup-bin: the command-line face of libcryptsetup) makes the
// device-mapper device /dev/mapper/netspawn-verity-MACHINE-RANDOM over
// them with the root hash (and its signature, which the kernel checks),
// and that device is mounted read-only in place of the partition.
//
// The dm table of a verity target (hash type, block sizes, salt, offsets,
// superblock) is intricate and libcryptsetup already reads it from the
// hash tree's superblock; netspawn does not build it with ioctls itself.
//
// Right after netspawn opens the new device it asks for its deferred
// removal (veritysetup close --deferred): the kernel removes the device
// itself once nothing holds it open, that is once netspawn's descriptor
// and every mount of it are gone. Every mount of the image is detached or
// in the container's mount namespace, so this happens when netspawn ends,
// also by SIGKILL; the loop devices below go with it (autoclear). Between
// veritysetup open and that request (milliseconds) a SIGKILL would leave
// the device behind; every error path closes it.

// veritysetupCmd is the veritysetup binary (a variable for tests).
var veritysetupCmd = "veritysetup"

// verityDevice is an open dm-verity device.
type verityDevice struct {
	name string   // the device-mapper name
	path string   // /dev/mapper/NAME
	file *os.File // held open: the device lives as long as this or a mount
}

// verityDeviceName is a device-mapper name for a machine's verity device:
// unique (random), recognisable as netspawn's, within the kernel's
// 127-byte limit.
func verityDeviceName(machine string, random []byte) string {
	m := strings.Map(func(r rune) rune {
		if r == '/' || r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, machine)
	if len(m) > 64 {
		m = m[:64]
	}
	return "netspawn-verity-" + m + "-" + hex.EncodeToString(random)
}

// verityOpenArgs is veritysetup's command line to open the device name
// over data with the hash tree in hash (its superblock says the rest).
func verityOpenArgs(data, name, hash, rootHash, sigPath string) []string {
	args := []string{"open", data, name, hash, rootHash}
	if sigPath != "" {
		args = append(args, "--root-hash-signature="+sigPath)
	}
	return args
}

// verityCloseArgs closes the device, at once or once its last user is
// gone.
func verityCloseArgs(name string, deferred bool) []string {
	if deferred {
		return []string{"close", "--deferred", name}
	}
	return []string{"close", name}
}

// verityCorrupted reads veritysetup status's output: whether dm-verity
// has seen data that does not match the hash tree.
func verityCorrupted(status string) bool {
	for _, l := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && strings.TrimSpace(k) == "status" && strings.Contains(v, "corrupted") {
			return true
		}
	}
	return false
}

// kernelHasModule says whether the kernel has a driver: loaded, built in
// or as a module it loads on demand.
func kernelHasModule(module string) bool {
	if _, err := os.Stat("/sys/module/" + module); err == nil {
		return true
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	for _, f := range []string{"modules.builtin", "modules.dep"} {
		b, err := os.ReadFile(filepath.Join("/lib/modules", rel, f))
		if err == nil && (bytes.Contains(b, []byte("/"+module+".ko")) || bytes.Contains(b, []byte("/"+strings.ReplaceAll(module, "_", "-")+".ko"))) {
			return true
		}
	}
	return false
}

// verityAvailable says whether this host can set up dm-verity, and if
// not what is missing.
func verityAvailable() error {
	// /dev/mapper/control may exist without the driver (a node made by
	// hand or by tmpfiles for a module the kernel lacks): the kernel's own
	// word is its misc device, or a dm_mod it can load.
	if _, err := os.Stat("/sys/class/misc/device-mapper"); err != nil && !kernelHasModule("dm_mod") {
		return errors.New("this kernel has no device mapper (no misc device device-mapper, and dm_mod is neither built in nor a module of this kernel): dm-verity needs CONFIG_BLK_DEV_DM and CONFIG_DM_VERITY")
	}
	if !kernelHasModule("dm_verity") {
		return errors.New("this kernel has no dm-verity target (dm_verity is neither loaded, built in nor a module of this kernel): use a kernel with CONFIG_DM_VERITY")
	}
	if _, err := findVeritysetup(); err != nil {
		return err
	}
	return nil
}

// findVeritysetup finds veritysetup in $PATH or, for a $PATH without the
// sbin directories (sudo from a user's shell), where Debian puts it.
func findVeritysetup() (string, error) {
	if p, err := exec.LookPath(veritysetupCmd); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/veritysetup", "/sbin/veritysetup"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			veritysetupCmd = p
			return p, nil
		}
	}
	return "", errors.New("veritysetup is missing: install it (Debian: apt-get install cryptsetup-bin)")
}

// runVeritysetup runs veritysetup with extra files (fd 3 on), returning
// its output as the error's text when it fails.
func runVeritysetup(args []string, extra []*os.File) (string, error) {
	cmd := exec.Command(veritysetupCmd, args...)
	cmd.ExtraFiles = extra
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		if text == "" {
			text = err.Error()
		}
		return text, fmt.Errorf("veritysetup %s: %s", strings.Join(args, " "), text)
	}
	return text, nil
}

// sigFile is the signature in a memfd, for veritysetup to read as
// /dev/fd/3.
func sigFile(sig []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("netspawn-root-hash-sig", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for the root hash signature: %w", err)
	}
	f := os.NewFile(uintptr(fd), "root-hash-sig")
	if _, err := f.Write(sig); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the root hash signature: %w", err)
	}
	return f, nil
}

// openVerity makes the dm-verity device of partition p of the image in
// backing, and returns it open with its deferred removal requested.
func openVerity(backing *os.File, machine string, p *dissect.Partition, v *dissect.Verity) (_ *verityDevice, err error) {
	if err := verityAvailable(); err != nil {
		return nil, fmt.Errorf("the %s partition is verity-protected (root hash from %s): %w", p.Designator, v.RootHashFrom, err)
	}
	data, dataDev, err := attachLoop(backing, p.Offset, p.Size, true)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", p.Designator, err)
	}
	defer data.Close() // the verity device holds it
	var hash *os.File
	var hashDev string
	if v.Hash != nil {
		hash, hashDev, err = attachLoop(backing, v.Hash.Offset, v.Hash.Size, true)
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", v.Hash.Designator, err)
		}
	} else {
		tree, err := os.OpenFile(v.DataPath, os.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("verity data (from %s): %w", v.DataFrom, err)
		}
		hash, hashDev, err = attachLoop(tree, 0, 0, true)
		tree.Close()
		if err != nil {
			return nil, fmt.Errorf("verity data %s: %w", v.DataPath, err)
		}
	}
	defer hash.Close()
	random := make([]byte, 4)
	if err := readRandom(random); err != nil {
		return nil, err
	}
	d := &verityDevice{name: verityDeviceName(machine, random)}
	d.path = "/dev/mapper/" + d.name
	var extra []*os.File
	sigPath := ""
	if v.Sig != nil {
		sf, err := sigFile(v.Sig)
		if err != nil {
			return nil, err
		}
		defer sf.Close()
		extra, sigPath = []*os.File{sf}, "/dev/fd/3"
	}
	if text, err := runVeritysetup(verityOpenArgs(dataDev, d.name, hashDev, v.RootHashHex(), sigPath), extra); err != nil {
		d.closeNow()
		return nil, verityOpenError(p, v, text, err)
	}
	defer func() {
		if err != nil {
			d.closeNow()
		}
	}()
	if d.file, err = os.OpenFile(d.path, os.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("opening the dm-verity device of partition %s: %w", p.Designator, err)
	}
	if _, err := runVeritysetup(verityCloseArgs(d.name, true), nil); err != nil {
		d.file.Close()
		d.file = nil
		return nil, fmt.Errorf("asking for the deferred removal of %s: %w", d.path, err)
	}
	return d, nil
}

// verityOpenError explains a failed veritysetup open.
func verityOpenError(p *dissect.Partition, v *dissect.Verity, text string, err error) error {
	hint := ""
	switch {
	case v.Sig != nil:
		// The kernel checks the signature when the table loads: EBADMSG
		// for one that is no valid PKCS#7, EKEYREJECTED or ENOKEY for one
		// no trusted key made.
		hint = fmt.Sprintf(" (with the root hash signature from %s, which the kernel checks: it needs CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG and the signing certificate in its trusted keyrings; \"Bad message\" is a signature that is no valid PKCS#7, \"Key was rejected\" or \"Required key not available\" one no trusted key made)", v.SigFrom)
	case strings.Contains(strings.ToLower(text), "verification"), strings.Contains(text, "root hash"):
		hint = fmt.Sprintf(" (the hash tree does not match the root hash from %s: the image is corrupt or modified, or the root hash is wrong)", v.RootHashFrom)
	}
	return fmt.Errorf("dm-verity refused the %s partition%s: %w", p.Designator, hint, err)
}

// mountError explains a failed mount of a verity device: when dm-verity
// has seen data that does not match the hash tree, it says so.
func (d *verityDevice) mountError(p *dissect.Partition, v *dissect.Verity, err error) error {
	status, _ := runVeritysetup([]string{"status", d.name}, nil)
	if verityCorrupted(status) || errors.Is(err, unix.EIO) {
		return fmt.Errorf("dm-verity: the data of the %s partition does not match the root hash from %s: the image is corrupt or modified, or the root hash is wrong (%v)",
			p.Designator, v.RootHashFrom, err)
	}
	return err
}

// closeNow removes the device at once (an error path, before anything
// mounted it); a device already marked for deferred removal goes when
// its last user does, so a failure here is only logged.
func (d *verityDevice) closeNow() {
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
	if _, err := os.Stat(d.path); err != nil {
		return
	}
	if _, err := runVeritysetup(verityCloseArgs(d.name, false), nil); err != nil {
		warnf(false, "removing %s: %v", d.path, err)
	}
}
