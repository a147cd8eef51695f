package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// hmp runs commands on QEMU's human monitor at a unix socket and returns
// what each printed. It is for diagnosis only: a guest that went silent is
// asked what its vCPUs are doing before it is killed.
func hmp(sock string, cmds ...string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("connecting to QEMU's monitor: %w", err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	untilPrompt := func() (string, error) {
		var b strings.Builder
		for {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			s, err := r.ReadString(' ')
			b.WriteString(s)
			if strings.HasSuffix(b.String(), "(qemu) ") {
				return strings.TrimSuffix(b.String(), "(qemu) "), nil
			}
			if err != nil {
				return b.String(), err
			}
		}
	}
	if _, err := untilPrompt(); err != nil {
		return "", fmt.Errorf("QEMU's monitor: %w", err)
	}
	var out strings.Builder
	for _, cmd := range cmds {
		if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
			return out.String(), err
		}
		s, err := untilPrompt()
		// The monitor echoes the command line with terminal escapes.
		lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
		if len(lines) > 0 {
			lines = lines[1:]
		}
		fmt.Fprintf(&out, "(qemu) %s\n%s", cmd, strings.Join(lines, "\n"))
		if err != nil {
			return out.String(), err
		}
	}
	return out.String(), nil
}

// diagnoseSilence asks a silent guest what it is doing: where each vCPU is
// (idle in the kernel's halt, or spinning), then, through the emulated
// keyboard's SysRq, the kernel's list of blocked tasks, every task's stack
// and every CPU's backtrace, which the kernel prints on the console file.
// Keyboard interrupts reach a kernel whose timers or serial port stopped,
// so the dump tells a lost interrupt from a deadlock from a stuck CPU.
func diagnoseSilence(name, sock, consoleLog string) {
	out, err := hmp(sock, "info status", "info cpus", "info registers -a")
	for _, l := range strings.Split(out, "\n") {
		// The registers that say where a vCPU is and whether it halted.
		if strings.HasPrefix(l, "(qemu)") || strings.Contains(l, "RIP=") || strings.HasPrefix(l, "CPU#") ||
			strings.Contains(l, "HLT=") || strings.Contains(l, "thread_id") || strings.Contains(l, "VM status") {
			fmt.Printf("[%s monitor] %s\n", name, l)
		}
	}
	if err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	before := fileSize(consoleLog)
	// The console's log level up (the guest boots quiet), every task's stack
	// (long, summarised below), then the blocked tasks and the CPUs'
	// backtraces, which end up last on the console.
	for _, key := range []string{"8", "t", "w", "l"} {
		if _, err := hmp(sock, "sendkey alt-sysrq-"+key); err != nil {
			logf("profile %s: SysRq-%s: %v", name, key, err)
		}
	}
	// The dump is done when the console stops growing (or after 30 s).
	last, still := fileSize(consoleLog), 0
	for i := 0; i < 60 && still < 6; i++ {
		time.Sleep(500 * time.Millisecond)
		if n := fileSize(consoleLog); n != last {
			last, still = n, 0
		} else {
			still++
		}
	}
	logf("profile %s: the guest's kernel printed %d bytes after SysRq (none: no interrupt is handled)", name, last-before)
	if b, err := os.ReadFile(consoleLog); err == nil && int64(len(b)) >= before {
		for _, l := range summariseTasks(string(b[before:])) {
			fmt.Printf("[%s tasks] %s\n", name, l)
		}
	}
}

// summariseTasks turns the kernel's SysRq-T dump into one line per task:
// its name, PID, state and the innermost frames of its kernel stack, for
// every user task and every kernel thread blocked or running.
func summariseTasks(dump string) []string {
	var out []string
	var cur string
	var frames []string
	flush := func() {
		// Idle kernel threads say nothing; user tasks and any blocked (D)
		// or running (R) task do.
		idleKthread := strings.Contains(cur, " ppid:2 ") && !strings.Contains(cur, "state:D") && !strings.Contains(cur, "state:R")
		if cur != "" && !idleKthread {
			out = append(out, cur+": "+strings.Join(frames, " < "))
		}
		cur, frames = "", nil
	}
	for _, l := range strings.Split(dump, "\n") {
		l = strings.TrimRight(l, "\r")
		// "[  123.4] task:sleep  state:S stack:0 pid:123 ppid:1 flags:0x0"
		if i := strings.Index(l, "task:"); i >= 0 && strings.Contains(l, "state:") {
			flush()
			cur = strings.Join(strings.Fields(l[i:]), " ")
			continue
		}
		if cur == "" || len(frames) >= 6 {
			continue
		}
		// "[  123.4]  __schedule+0x34c/0x9e0" (frames marked ? are guesses)
		if i := strings.Index(l, "]"); i >= 0 {
			f := strings.TrimSpace(l[i+1:])
			if strings.Contains(f, "+0x") && !strings.HasPrefix(f, "?") && !strings.HasPrefix(f, "RIP") {
				f, _, _ = strings.Cut(f, "+0x")
				frames = append(frames, f)
			}
		}
	}
	flush()
	return out
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}
