// Command hostlane proves netspawn on the kind of host most users run:
// systemd as PID 1, a pure cgroup v2 hierarchy with nsdelegate, networkd and
// resolved, machined, a Docker-like firewall. It boots a Debian bookworm
// guest under QEMU (software emulation where there is no /dev/kvm), once per
// host profile, and runs the guest-side tests of test/hosts inside it, where
// the guest's own namespaces play the host.
//
//	make test-hosts                       # every profile
//	go run ./test/hostlane -profiles networkd -run Boot
//
// It leaves no VM, image mount or loop device behind: the disks are
// images made with mkfs.ext4 -d, booted as throwaway snapshots, and QEMU is
// killed by PID on a timeout or an interrupt.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

//go:embed lane.sh
var laneScript []byte

// profiles are the kinds of host: each a boot of the same guest with other
// units started (kernel command line systemd.wants=) and other set-up in
// lane.sh.
var profiles = map[string]string{
	// systemd-networkd (its 80-container-*.network files match ve-, vb-,
	// vz- links) and systemd-resolved with nss-resolve.
	"networkd": "systemd.wants=systemd-networkd.service systemd.wants=systemd-resolved.service",
	// br_netfilter and a Docker-like firewall: forward policy drop.
	"firewall": "",
	// systemd-machined running.
	"machined": "systemd.wants=systemd-machined.service",
	// Another tool flushes the nftables ruleset under netspawnd.
	"flush": "",
}

var profileOrder = []string{"networkd", "firewall", "machined", "flush"}

func main() {
	list := flag.String("profiles", strings.Join(profileOrder, ","), "host profiles to boot, comma-separated")
	run := flag.String("run", "", "only the guest tests matching this regular expression")
	timeout := flag.Duration("timeout", 25*time.Minute, "time limit for one profile's boot and tests")
	flag.DurationVar(&silence, "silence", silence, "how long the guest may print nothing (not even its heartbeat) before it counts as stuck")
	flag.Parse()
	if err := lane(strings.Split(*list, ","), *run, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "hostlane: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("hostlane: "+format+"\n", args...)
}

func lane(names []string, run string, timeout time.Duration) error {
	for _, n := range names {
		if _, ok := profiles[n]; !ok {
			return fmt.Errorf("unknown profile %q (have %s)", n, strings.Join(profileOrder, ", "))
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (sudo make test-hosts)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "debootstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: make test-hosts installs qemu-system-x86, e2fsprogs and debootstrap", tool)
		}
	}
	cache := harness.CacheDir()
	tree, err := guestTree(cache, logf)
	if err != nil {
		return err
	}
	img, err := guestImage(cache, tree, logf)
	if err != nil {
		return err
	}
	kernel, initrd, err := guestKernel(tree)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("/var/tmp", "netspawn-lane-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	data, err := dataDisk(work, cache)
	if err != nil {
		return err
	}

	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	var failed []string
	for _, name := range names {
		start := time.Now()
		ok, err := boot(name, img, data, kernel, initrd, run, timeout, interrupted)
		switch {
		case err != nil:
			return fmt.Errorf("profile %s: %w", name, err)
		case !ok:
			failed = append(failed, name)
			logf("profile %s: FAIL (%s)", name, time.Since(start).Round(time.Second))
		default:
			logf("profile %s: ok (%s)", name, time.Since(start).Round(time.Second))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("profiles failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// guestKernel finds the guest's kernel and initrd in its /boot.
func guestKernel(tree string) (string, string, error) {
	ks, _ := filepath.Glob(filepath.Join(tree, "boot/vmlinuz-*"))
	is, _ := filepath.Glob(filepath.Join(tree, "boot/initrd.img-*"))
	if len(ks) != 1 || len(is) != 1 {
		return "", "", fmt.Errorf("the guest tree %s has no single kernel and initrd in /boot (%v %v)", tree, ks, is)
	}
	return ks[0], is[0], nil
}

// dataDisk makes the lane's second disk: netspawn's binaries, the guest
// tests compiled, the lane script, the service file, and the test trees
// (so the guest needs no network).
func dataDisk(work, cache string) (string, error) {
	dir := filepath.Join(work, "data")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	src := os.Getenv("NETSPAWN_BIN")
	if src == "" {
		return "", errors.New("NETSPAWN_BIN is not set: run it as make test-hosts (or set NETSPAWN_BIN to the built bin/)")
	}
	for _, f := range []string{"netspawn", "netspawnd", "netspawnctl", "libnss_netspawn.so.2"} {
		if err := harness.CopyFile(filepath.Join(src, f), filepath.Join(bin, f), 0o755); err != nil {
			return "", err
		}
	}
	logf("compiling the guest tests (test/hosts)")
	build := exec.Command("go", "test", "-c", "-tags", "hostlane", "-o", filepath.Join(dir, "hosts.test"), "./test/hosts")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go test -c ./test/hosts: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "lane.sh"), laneScript, 0o755); err != nil {
		return "", err
	}
	if err := harness.CopyFile("configs/netspawnd.service", filepath.Join(dir, "netspawnd.service"), 0o644); err != nil {
		return "", err
	}
	logf("preparing the test trees")
	busybox, err := harness.CachedBusyboxTree(cache)
	if err != nil {
		return "", err
	}
	debian, err := harness.CachedDebianTree(cache, func(l string) {})
	if err != nil {
		return "", err
	}
	tc := filepath.Join(dir, "cache")
	if err := os.MkdirAll(tc, 0o755); err != nil {
		return "", err
	}
	for _, t := range []string{busybox, debian} {
		// Hard links: mkfs.ext4 reads them, nothing writes them.
		if out, err := exec.Command("cp", "-al", t, filepath.Join(tc, filepath.Base(t))).CombinedOutput(); err != nil {
			return "", fmt.Errorf("linking %s: %v: %s", t, err, out)
		}
	}
	du, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		return "", fmt.Errorf("du %s: %w", dir, err)
	}
	var size int64
	fmt.Sscan(string(du), &size)
	img := filepath.Join(work, "data.img")
	logf("making the data disk (%d MB)", size>>20)
	if err := mkfsFromDir(dir, img, "netspawn-lane", size+size/2+256<<20); err != nil {
		return "", err
	}
	return img, os.RemoveAll(dir)
}

// lanePort names the virtio-serial port the lane talks on (lane.sh finds
// it by this name in /sys/class/virtio-ports).
const lanePort = "netspawn.lane"

// silence is how long the guest may say nothing (it boots in under a
// minute, then prints at least a heartbeat a minute); -silence changes it.
var silence = 5 * time.Minute

// printConsole prints the end of the guest's console (kernel and systemd
// messages).
func printConsole(name, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		logf("profile %s: no console log: %v", name, err)
		return
	}
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Printf("[%s console] %s\n", name, strings.TrimRight(l, "\r"))
	}
}

// boot runs one profile: QEMU with the guest image and the data disk as
// snapshots, the serial console on a pipe, until the guest powers off, the
// time is up or the user interrupts. It reports whether the guest said its
// tests passed.
func boot(name, img, data, kernel, initrd, run string, timeout time.Duration, interrupted chan os.Signal) (bool, error) {
	// The kernel's and systemd's console (ttyS0) goes to a file, printed
	// when something goes wrong; the lane's own output to a pipe, through a
	// virtio-serial port: no UART, no tty layer (a terminal the lane's
	// session would own, whose line settings any program in it may change)
	// between the tests and the host. Four times in two days a guest went
	// silent for good in TestCgroupLimits, its output then on a second
	// emulated 16550 (ttyS1, the lane's controlling terminal), heartbeat
	// included, with nothing on the kernel's console.
	consoleLog := filepath.Join(filepath.Dir(data), "console-"+name+".log")
	defer os.Remove(consoleLog)
	monitor := filepath.Join(filepath.Dir(data), "monitor-"+name+".sock")
	defer os.Remove(monitor)
	// SysRq from the emulated keyboard, for the dump of a silent guest.
	cmdline := "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 sysrq_always_enabled netspawn.profile=" + name
	if run != "" {
		cmdline += " netspawn.run=" + run
	}
	if extra := profiles[name]; extra != "" {
		cmdline += " " + extra
	}
	args := []string{"-machine", "q35", "-smp", "2", "-m", "2048",
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "unix:" + monitor + ",server=on,wait=off",
		"-serial", "file:" + consoleLog,
		"-device", "virtio-serial-pci", "-chardev", "stdio,id=lane,signal=off",
		"-device", "virtserialport,chardev=lane,name=" + lanePort,
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-drive", "file=" + img + ",if=virtio,format=raw,snapshot=on",
		"-drive", "file=" + data + ",if=virtio,format=raw,snapshot=on"}
	args = append(args, accelArgs(kernel)...)
	logf("profile %s: booting the guest (%s)", name, cmdline)
	cmd := exec.Command("qemu-system-x86_64", args...)
	// QEMU's stdio chardev counts an end of file on stdin as the host
	// side closing the port, and the guest's writes to a virtio-serial
	// port whose host side is closed block: stdin is a pipe that stays
	// open, and nothing is written to it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return false, err
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting qemu: %w", err)
	}
	var mu sync.Mutex
	result := ""
	lines := make(chan struct{})
	heard := make(chan struct{}, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case heard <- struct{}{}:
			default:
			}
			l := strings.TrimRight(sc.Text(), "\r")
			fmt.Printf("[%s] %s\n", name, l)
			if r, ok := strings.CutPrefix(strings.TrimSpace(l), "LANE-RESULT: "); ok {
				mu.Lock()
				result = r
				mu.Unlock()
			}
		}
	}()
	done := make(chan error, 1)
	go func() { <-lines; done <- cmd.Wait() }()
	deadline := time.After(timeout)
	// The guest prints a heartbeat every minute while its tests run: a
	// guest silent for longer than silence is stuck, whatever the deadline.
	silent := time.NewTimer(silence)
	defer silent.Stop()
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				printConsole(name, consoleLog)
				return false, fmt.Errorf("qemu: %w", err)
			}
			break wait
		case <-heard:
			silent.Reset(silence)
		case <-silent.C:
			diagnoseSilence(name, monitor, consoleLog)
			_ = cmd.Process.Kill()
			<-done
			printConsole(name, consoleLog)
			return false, fmt.Errorf("the guest said nothing for %s (no heartbeat): QEMU killed; its console is above", silence)
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			printConsole(name, consoleLog)
			return false, fmt.Errorf("no result within %s: QEMU killed", timeout)
		case s := <-interrupted:
			_ = cmd.Process.Kill()
			<-done
			return false, fmt.Errorf("interrupted (%v): QEMU killed", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case result == "":
		printConsole(name, consoleLog)
		return false, errors.New("the guest powered off without a result (see its console above)")
	case strings.HasPrefix(result, name+" ok"):
		return true, nil
	}
	return false, nil
}

var (
	accelOnce sync.Once
	accel     []string
)

// accelArgs picks QEMU's accelerator and CPU model once: KVM where
// /dev/kvm exists and a guest kernel really runs with it, else software
// emulation. Nested KVM can fail in two ways seen here (a Firecracker
// guest's /dev/kvm): QEMU aborts setting an MSR that -cpu max asks for
// (IA32_ARCH_CAPABILITIES), or, without that MSR, the guest hangs after
// the BIOS. So the probe boots the lane's kernel with no root file system
// and waits for its first words.
func accelArgs(kernel string) []string {
	accelOnce.Do(func() {
		accel = []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
		if _, err := os.Stat("/dev/kvm"); err != nil {
			logf("no /dev/kvm: software emulation")
			return
		}
		if err := probeKVM(kernel); err != nil {
			logf("KVM is not usable here (%v): software emulation", err)
			return
		}
		logf("KVM works: the guests run with it")
		accel = []string{"-accel", "kvm", "-cpu", "max"}
	})
	return accel
}

// probeKVM boots kernel under KVM without a root file system: a working
// KVM gets it to print its banner within seconds (then it panics, and
// -no-reboot ends QEMU).
func probeKVM(kernel string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-cpu", "max", "-machine", "q35", "-m", "256",
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
		"-append", "console=ttyS0 panic=-1 root=/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "Linux version") {
		return nil
	}
	if ctx.Err() != nil {
		return errors.New("the guest kernel printed nothing within 20s")
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return fmt.Errorf("%v: %s", err, lines[len(lines)-1])
}
