package seccomp

import "strings"

// groupDef is one named syscall group. Members are syscall names or other
// groups (written with their leading @). The membership follows systemd
// v252..v255 (the SystemCallFilter= sets of systemd.exec(5)), so that a
// --system-call-filter= written for systemd-nspawn means the same here.
type groupDef struct {
	help    string
	members string // space-separated
}

var groupDefs = map[string]groupDef{
	"@default": {"calls every process needs: memory, time, exit, identity queries",
		"@sandbox arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime clock_gettime64 " +
			"clock_nanosleep clock_nanosleep_time64 execve exit exit_group futex futex_time64 futex_waitv " +
			"get_robust_list get_thread_area getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups " +
			"getgroups32 getpgid getpgrp getpid getppid getrandom getresgid getresgid32 getresuid getresuid32 " +
			"getrlimit getsid gettid gettimeofday getuid getuid32 membarrier mmap mmap2 mprotect munmap " +
			"nanosleep pause prlimit64 restart_syscall riscv_flush_icache riscv_hwprobe rseq rt_sigreturn " +
			"sched_getaffinity sched_yield set_robust_list set_thread_area set_tid_address set_tls sigreturn " +
			"time ugetrlimit"},
	"@aio": {"asynchronous I/O, io_uring included",
		"io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit " +
			"io_uring_enter io_uring_register io_uring_setup"},
	"@basic-io": {"read, write, seek and close descriptors",
		"_llseek close close_range dup dup2 dup3 lseek pread64 preadv preadv2 pwrite64 pwritev pwritev2 " +
			"read readv write writev"},
	"@chown": {"changing file owners",
		"chown chown32 fchown fchown32 fchownat lchown lchown32"},
	"@clock": {"setting the system clock",
		"adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday"},
	"@cpu-emulation": {"CPU emulation (vm86, LDT changes, endianness switches)",
		"modify_ldt subpage_prot switch_endian vm86 vm86old"},
	"@debug": {"debugging, tracing and performance counters",
		"lookup_dcookie perf_event_open pidfd_getfd ptrace rtas s390_runtime_instr sys_debug_setcontext"},
	"@file-system": {"files, directories, metadata, extended attributes, inotify",
		"access chdir chmod close creat faccessat faccessat2 fallocate fchdir fchmod fchmodat fchmodat2 " +
			"fcntl fcntl64 fgetxattr flistxattr fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs " +
			"fstatfs64 ftruncate ftruncate64 futimesat getcwd getdents getdents64 getxattr inotify_add_watch " +
			"inotify_init inotify_init1 inotify_rm_watch lgetxattr link linkat listxattr llistxattr " +
			"lremovexattr lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat newfstatat oldfstat oldlstat " +
			"oldstat open openat openat2 readlink readlinkat removexattr rename renameat renameat2 rmdir " +
			"setxattr stat stat64 statfs statfs64 statx symlink symlinkat truncate truncate64 unlink " +
			"unlinkat utime utimensat utimensat_time64 utimes"},
	"@io-event": {"event loops: select, poll, epoll, eventfd",
		"_newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait " +
			"epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 pselect6 pselect6_time64 select"},
	"@ipc": {"pipes, SysV IPC, POSIX message queues, memfd, cross-process memory",
		"ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 " +
			"mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd pipe pipe2 " +
			"process_madvise process_vm_readv process_vm_writev semctl semget semop semtimedop " +
			"semtimedop_time64 shmat shmctl shmdt shmget"},
	"@keyring": {"the kernel keyring (not namespaced)",
		"add_key keyctl request_key"},
	"@memlock": {"locking memory",
		"mlock mlock2 mlockall munlock munlockall"},
	"@module": {"loading and unloading kernel modules",
		"delete_module finit_module init_module"},
	"@mount": {"mounting, the new mount API, chroot and pivot_root",
		"chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree pivot_root umount umount2"},
	"@network-io": {"sockets",
		"accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg " +
			"recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socket socketcall socketpair"},
	"@obsolete": {"obsolete, unusual or never implemented calls",
		"_sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty idle lock mpx " +
			"prof profil putpmsg query_module security sgetmask ssetmask stime stty sysfs tuxcall ulimit " +
			"uselib ustat vserver"},
	"@pkey": {"memory protection keys",
		"pkey_alloc pkey_free pkey_mprotect"},
	"@privileged": {"calls that need a capability",
		"@chown @clock @module @raw-io @reboot @swap _sysctl acct bpf capset chroot fanotify_init " +
			"fanotify_mark nfsservctl open_by_handle_at pivot_root quotactl quotactl_fd setdomainname " +
			"setfsuid setfsuid32 setgroups setgroups32 sethostname setresuid setresuid32 setreuid setreuid32 " +
			"setuid setuid32 vhangup"},
	"@process": {"creating, running, signalling and waiting for processes; namespaces",
		"capget clone clone3 execveat fork getrusage kill pidfd_open pidfd_send_signal prctl " +
			"rt_sigqueueinfo rt_tgsigqueueinfo setns swapcontext tgkill times tkill unshare vfork wait4 waitid waitpid"},
	"@raw-io": {"raw I/O ports and PCI configuration space",
		"ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read s390_pci_mmio_write"},
	"@reboot": {"reboot and kexec",
		"kexec_file_load kexec_load reboot"},
	"@resources": {"priorities, CPU affinity, NUMA policy, resource limits",
		"ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr sched_setparam " +
			"sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority setrlimit"},
	"@sandbox": {"self-sandboxing: seccomp and landlock",
		"landlock_add_rule landlock_create_ruleset landlock_restrict_self seccomp"},
	"@setuid": {"changing user and group IDs",
		"setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid " +
			"setresuid32 setreuid setreuid32 setuid setuid32"},
	"@signal": {"signal handlers, masks and signalfd",
		"rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 " +
			"sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigsuspend"},
	"@swap": {"enabling and disabling swap",
		"swapoff swapon"},
	"@sync": {"flushing files and memory to storage",
		"fdatasync fsync msync sync sync_file_range sync_file_range2 syncfs"},
	"@system-service": {"what a typical system service needs",
		"@aio @basic-io @chown @default @file-system @io-event @ipc @keyring @memlock @network-io " +
			"@process @resources @setuid @signal @sync @timer arm_fadvise64_64 capget capset copy_file_range " +
			"fadvise64 fadvise64_64 flock get_mempolicy getcpu getpriority ioctl ioprio_get kcmp madvise " +
			"mremap name_to_handle_at oldolduname olduname personality readahead readdir remap_file_pages " +
			"sched_get_priority_max sched_get_priority_min sched_getattr sched_getparam sched_getscheduler " +
			"sched_rr_get_interval sched_rr_get_interval_time64 sched_yield sendfile sendfile64 setfsgid " +
			"setfsgid32 setfsuid setfsuid32 setpgid setsid splice sysinfo tee umask uname userfaultfd vmsplice"},
	"@timer": {"timers and alarms",
		"alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime " +
			"timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 " +
			"timerfd_settime timerfd_settime64 times"},
	// @known is filled in from the syscall tables (every syscall of every
	// supported ABI) plus @obsolete; see knownGroup.
	"@known": {"every syscall this build knows of", ""},
}

// Capability numbers (linux/capability.h) that widen the default filter.
const (
	capIPCLock      = 14
	capSysModule    = 16
	capSysRawIO     = 17
	capSysPtrace    = 19
	capSysPacct     = 20
	capSysBoot      = 22
	capSysTime      = 25
	capSysTTYConfig = 26
	capSyslog       = 34
)

// defaultItems is the allow-list systemd-nspawn (v252..v255, add_syscall_filters in
// nspawn-seccomp.c) gives every container: items with cap 0 always, the
// others only if that capability is in the container's bounding set.
//
// Deliberately absent, as in nspawn: @cpu-emulation, @keyring (not
// namespaced), @obsolete, @pkey, @swap, bpf, fanotify_*, kexec_*,
// lookup_dcookie, nfsservctl, open_by_handle_at, perf_event_open, quotactl.
var defaultItems = []struct {
	cap  int // -1: always
	name string
}{
	{-1, "@aio"}, {-1, "@basic-io"}, {-1, "@chown"}, {-1, "@default"}, {-1, "@file-system"},
	{-1, "@io-event"}, {-1, "@ipc"}, {-1, "@mount"}, {-1, "@network-io"}, {-1, "@process"},
	{-1, "@resources"}, {-1, "@setuid"}, {-1, "@signal"}, {-1, "@sync"}, {-1, "@timer"},

	{capSysTime, "@clock"}, {capSysModule, "@module"}, {capSysRawIO, "@raw-io"}, {capIPCLock, "@memlock"},

	{-1, "arm_fadvise64_64 brk capget capset copy_file_range fadvise64 fadvise64_64 flock get_mempolicy " +
		"getcpu getpriority getrandom ioctl ioprio_get kcmp madvise mincore mprotect mremap " +
		"name_to_handle_at oldolduname olduname personality readahead readdir remap_file_pages " +
		"sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam " +
		"sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_yield sendfile " +
		"sendfile64 setdomainname setfsgid setfsgid32 setfsuid setfsuid32 sethostname setpgid setsid " +
		"splice sysinfo tee umask uname userfaultfd vmsplice"},

	{capSysPacct, "acct"},
	{capSysPtrace, "process_vm_readv process_vm_writev ptrace"},
	{capSysBoot, "reboot"},
	{capSyslog, "syslog"},
	{capSysTTYConfig, "vhangup"},
}

func words(s string) []string { return strings.Fields(s) }

// postV255 are syscalls the kernel gained after systemd v255 was released,
// which that nspawn therefore does not know: they fail with ENOSYS there,
// not EPERM, so that programs fall back to older calls (getxattrat to
// getxattr, for instance). netspawn does the same unless a
// --system-call-filter= allows them by name.
var postV255 = map[string]bool{
	"file_getattr": true, "file_setattr": true, "getxattrat": true, "listmount": true, "listns": true,
	"listxattrat": true, "lsm_get_self_attr": true, "lsm_list_modules": true, "lsm_set_self_attr": true,
	"mseal": true, "open_tree_attr": true, "removexattrat": true, "rseq_slice_yield": true,
	"setxattrat": true, "statmount": true, "uprobe": true, "uretprobe": true,
}
