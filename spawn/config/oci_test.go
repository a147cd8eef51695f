package config

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func readOCITestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/oci/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func capMask(t *testing.T, names ...string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		c, err := CapabilityFromName(n)
		if err != nil {
			t.Fatal(err)
		}
		m |= 1 << uint(c)
	}
	return m
}

// The bundle "runc spec" writes (runc 1.1.5) maps to nspawn's meaning.
func TestParseOCIRuncSpec(t *testing.T) {
	b, err := ParseOCIConfig(readOCITestdata(t, "runc-spec.json"), "/srv/bundle")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, b.Root, "/srv/bundle/rootfs")
	eq(t, *b.ReadOnly, true)
	eq(t, b.Args, []string{"sh"})
	eq(t, b.Env, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"})
	eq(t, b.Cwd, "/")
	eq(t, *b.User, OCIUser{})
	eq(t, b.Pipe, false)
	three := capMask(t, "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
	eq(t, *b.CapBounding, three)
	eq(t, b.CapAmbient, three)
	eq(t, *b.Rlimits[unix.RLIMIT_NOFILE], Rlimit{Cur: 1024, Max: 1024})
	eq(t, *b.NoNewPrivileges, true)
	eq(t, b.Hostname, "runc")
	// Every mount of runc's list is an API file system netspawn mounts itself.
	eq(t, len(b.Binds), 0)
	eq(t, len(b.Tmpfs), 0)
	eq(t, b.Masked, []string{"/proc/latency_stats", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware"})
	eq(t, *b.Namespaces, OCINamespaces{PID: true, Network: true, IPC: true, UTS: true})
	eq(t, len(b.Properties), 0)
}

func TestParseOCIFull(t *testing.T) {
	b, err := ParseOCIConfig(readOCITestdata(t, "full.json"), "/b")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, b.Root, "/srv/roots/web")
	eq(t, b.ReadOnly, (*bool)(nil))
	eq(t, b.Pipe, true)
	eq(t, *b.User, OCIUser{UID: 1000, GID: 100, Groups: []uint32{10, 20}})
	eq(t, b.Args, []string{"/bin/httpd", "-f"})
	eq(t, b.Cwd, "/srv")
	eq(t, b.DeviceAllow, []DeviceAllow{{'c', 1, 3, "rwm"}})
	eq(t, *b.CapBounding, capMask(t, "CAP_NET_BIND_SERVICE", "CAP_CHOWN"))
	eq(t, b.CapAmbient, capMask(t, "CAP_NET_BIND_SERVICE"))
	eq(t, *b.Rlimits[unix.RLIMIT_NOFILE], Rlimit{Cur: 512, Max: 4096})
	eq(t, *b.Rlimits[unix.RLIMIT_CORE], Rlimit{Cur: Unlimited, Max: Unlimited})
	eq(t, *b.NoNewPrivileges, false)
	eq(t, *b.OOMScoreAdjust, 250)
	eq(t, b.Hostname, "web.example")
	eq(t, b.Binds, []BindMount{
		{Source: "/b/data", Dest: "/data", ReadOnly: true, Recursive: true},
		{Source: "/etc/hosts", Dest: "/etc/app.conf"},
		{Source: "/etc", Dest: "/etc", ReadOnly: true, Recursive: true, SourceInRoot: true},
	})
	eq(t, b.Tmpfs, []TmpfsMount{{Dest: "/scratch", Options: "nosuid,mode=1777,size=1m"}})
	eq(t, b.Masked, []string{"/secret"})
	eq(t, *b.Namespaces, OCINamespaces{Network: true, NetworkPath: "/run/netns/web", User: true, Cgroup: true, PID: true, IPC: true, UTS: true})
	eq(t, *b.UserNS, PrivateUsers{Mode: UserNSFixed, Shift: 1048576, Range: 65536})
	eq(t, b.Slice, "machine-web.slice")
	eq(t, b.Properties, []string{"CPUWeight=200", "CPUQuota=50%", "MemoryMax=268435456", "TasksMax=64"})
	if _, err := ParseProperties(b.Properties); err != nil {
		t.Errorf("the properties do not parse: %v", err)
	}
	eq(t, b.CPUAffinity, []int{0, 1})
	// What nspawn ignores is a warning each.
	w := strings.Join(b.Warnings, "\n")
	for _, want := range []string{"process.consoleSize", "process.apparmorProfile", "mounts[0].options: option \"nosuid\"",
		"mounts[2].options: option \"strictatime\"", "linux.resources.memory.reservation",
		"linux.sysctl: ignoring net.ipv4.ip_forward"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
}

// Bad bundles are refused with the JSON field named.
func TestParseOCIBad(t *testing.T) {
	const proc = `"process": {"args": ["sh"]}`
	cases := []struct{ json, want string }{
		{`[]`, "the top level is not a JSON object"},
		{`{"ociVersion": "1.0.0", ` + proc, "not valid JSON"},
		{`{"process": {"args": ["sh"]}}`, "ociVersion: missing"},
		{`{"ociVersion": 1}`, "ociVersion: expected a string"},
		{`{"ociVersion": "2.0.0", ` + proc + `}`, `ociVersion: version "2.0.0" is not supported`},
		{`{"ociVersion": "1.0.0"}`, "process: missing"},
		{`{"ociVersion": "1.0.0", "process": {"cwd": "/"}}`, "process.args: missing"},
		{`{"ociVersion": "1.0.0", "process": {"args": []}}`, "process.args: the argument list is empty"},
		{`{"ociVersion": "1.0.0", "process": {"args": [""]}}`, "process.args[0]: the executable name is empty"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh", 1]}}`, "process.args[1]: expected a string, got a number"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "cwd": "srv"}}`, `process.cwd: path "srv" is not absolute`},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "env": ["NOEQUALS"]}}`, `process.env[0]: "NOEQUALS" is not a NAME=VALUE`},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "user": {"uid": 0}}}`, "process.user.gid: missing"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "user": {"uid": -1, "gid": 0}}}`, "process.user.uid: must not be negative"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "oomScoreAdj": 2000}}`, "process.oomScoreAdj: 2000 is out of range"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_FLY"]}}}`, `process.capabilities.bounding[0]: unknown capability "CAP_FLY"`},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_CHOWN"]}}}`, "process.capabilities.effective: CAP_CHOWN are not in the bounding set"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "rlimits": [{"type": "NOFILE", "soft": 1, "hard": 1}]}}`, "process.rlimits[0].type: \"NOFILE\" does not begin with RLIMIT_"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]}}`, "process.rlimits[1].type: RLIMIT_NOFILE is given twice"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 1}]}}`, "process.rlimits[0]: the soft limit 10 is above the hard limit 1"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "ioPriority": {}}}`, "process.ioPriority: unknown field"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "domainname": "x"}`, "domainname: unknown field"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "hostname": "bad host"}`, `hostname: "bad host" is not a valid hostname`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "root": {"path": ""}}`, "root.path: empty"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "mounts": [{"destination": "data", "source": "/x"}]}`, `mounts[0].destination: path "data" is not absolute`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "mounts": [{"source": "/x"}]}`, "mounts[0].destination: missing"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "mounts": [{"destination": "/x", "type": "bind"}]}`, "mounts[0].source: a bind mount needs a source"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "mounts": [{"destination": "/x", "type": "proc", "source": "proc"}]}`, `mounts[0].type: mounts of type "proc" (on /x) are not supported`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "hooks": {"prestart": [{"path": "/bin/true"}]}}`, "hooks.prestart: OCI hooks are not run by netspawn"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "hooks": {"prestart": {}}}`, "hooks.prestart: expected an array"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "annotations": {"a": 1}}`, "annotations.a: expected a string"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "time"}, {"type": "mount"}]}}`, `linux.namespaces[0].type: unknown namespace type "time"`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "pid"}]}}`, "linux.namespaces: containers without a mount namespace are not supported"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}]}}`, `linux.namespaces[1].type: namespace "mount" is listed twice`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"}]}}`, "linux.namespaces[1].path: joining an existing pid namespace is not supported"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}, {"containerID": 1, "hostID": 2, "size": 1}]}}`, "linux.uidMappings: more than one mapping is not supported"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}], "uidMappings": [{"containerID": 1, "hostID": 100000, "size": 65536}]}}`, "linux.uidMappings[0].containerID: mappings that do not start at container ID 0"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}], "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}], "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}}`, "linux.uidMappings: UID and GID mappings that differ"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}], "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}}`, "linux.uidMappings: ID mappings need a user namespace"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "pid"}]}}`, "linux.namespaces: a container with a user namespace needs its own pid, ipc and uts"},
		{`{"ociVersion": "1.0.0", "process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"], "ambient": ["CAP_CHOWN"]}}}`, "process.capabilities.ambient: CAP_CHOWN are not in the bounding set"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"sysctl": {"net..x": "1"}}}`, `linux.sysctl: invalid sysctl key "net..x"`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"maskedPaths": ["proc/kcore"]}}`, `linux.maskedPaths[0]: path "proc/kcore" is not absolute`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"devices": [{"type": "c", "path": "/dev/fuse", "major": 10}]}}`, `linux.devices[0]: a device node of type "c" needs major and minor`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"cgroupsPath": "/user/foo"}}`, `linux.cgroupsPath: "/user/foo" does not name a slice unit`},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"resources": {"blockIO": {"weight": 10}}}}`, "linux.resources.blockIO.weight: not supported by netspawn: it has no I/O resource control (systemd-nspawn sets BlockIOWeight="},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"resources": {"cpu": {"quota": 1000}}}}`, "linux.resources.cpu: quota and period must be given together"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"resources": {"cpu": {"mems": "0"}}}}`, "linux.resources.cpu.mems: not supported, refusing"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"resources": {"memory": {"limit": "1G"}}}}`, "linux.resources.memory.limit: expected an integer, got a string"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"resources": {"pids": {}}}}`, "linux.resources.pids.limit: missing"},
		{`{"ociVersion": "1.0.0", ` + proc + `, "linux": {"personality": {}}}`, "linux.personality: unknown field"},
	}
	for _, c := range cases {
		_, err := ParseOCIConfig([]byte(c.json), "/b")
		if err == nil {
			t.Errorf("%s: no error, want %q", c.json, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.json, err, c.want)
		}
	}
	if _, err := ParseOCIConfig([]byte(`{"ociVersion": "1.0.0", `+proc+`}`), "b"); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative bundle directory: %v", err)
	}
}

func bundleEnv(t *testing.T, files map[string]string) sysEnv {
	env := testEnv(t)
	env.readFile = func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
	return env
}

// The bundle is applied under the command line, given before or after
// --oci-bundle=, as nspawn's settings mask.
func TestOCIBundlePrecedence(t *testing.T) {
	files := map[string]string{"/srv/cwd/b/config.json": string(readOCITestdata(t, "runc-spec.json"))}
	c, err := parseArgs([]string{"--oci-bundle=b", "-q"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.OCIBundle, "/srv/cwd/b")
	eq(t, c.Directory, "/srv/cwd/b/rootfs")
	eq(t, c.Machine, "rootfs")
	eq(t, c.Command, []string{"sh"})
	eq(t, c.Boot, false)
	eq(t, c.Hostname, "runc")
	eq(t, c.ReadOnly, true)
	eq(t, c.Chdir, "/")
	eq(t, *c.OCIUser, OCIUser{})
	eq(t, c.NoNewPrivileges, true)
	eq(t, *c.Rlimits[unix.RLIMIT_NOFILE], Rlimit{Cur: 1024, Max: 1024})
	eq(t, c.Capabilities(), capMask(t, "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"))
	eq(t, c.Network.Private, true)
	eq(t, c.ResolvConf, "off")
	eq(t, c.Timezone, "off")
	eq(t, c.ShareIPC || c.SharePID || c.ShareUTS, false)
	eq(t, c.NoCgroupNS, true) // runc's list has no cgroup namespace
	eq(t, c.MaskedPaths, []string{"/proc/latency_stats", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware"})
	eq(t, c.Console, ConsoleMode(""))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"-D/srv/other", "-u", "nobody", "--hostname=mine", "-E", "X=1", "--chdir=/tmp", "--rlimit=NOFILE=77", "--oci-bundle=b", "--", "/bin/true", "a"},
		{"--oci-bundle=b", "-D/srv/other", "-u", "nobody", "--hostname=mine", "-E", "X=1", "--chdir=/tmp", "--rlimit=NOFILE=77", "/bin/true", "a"},
	} {
		c, err := parseArgs(args, bundleEnv(t, files))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.Directory, "/srv/other")
		eq(t, c.Machine, "other")
		eq(t, c.Command, []string{"/bin/true", "a"})
		eq(t, c.User, "nobody")
		eq(t, c.OCIUser, (*OCIUser)(nil))
		eq(t, c.Hostname, "mine")
		eq(t, c.Env, []string{"X=1"})
		eq(t, c.Chdir, "/tmp")
		eq(t, *c.Rlimits[unix.RLIMIT_NOFILE], Rlimit{Cur: 77, Max: 77})
	}

	_, err = parseArgs([]string{"--oci-bundle=/nowhere"}, bundleEnv(t, files))
	errContains(t, err, "--oci-bundle=/nowhere: open /nowhere/config.json")
	files["/bad/config.json"] = `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "hooks": {"poststart": [{"path": "/x"}]}}`
	_, err = parseArgs([]string{"--oci-bundle=/bad"}, bundleEnv(t, files))
	errContains(t, err, "/bad/config.json: hooks.poststart: OCI hooks are not run")
	files["/nopid/config.json"] = `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"namespaces": [{"type": "mount"}]}}`
	c, err = parseArgs([]string{"--oci-bundle=/nopid", "-b"}, bundleEnv(t, files))
	if err == nil {
		err = c.Validate()
	}
	errContains(t, err, "-b/--boot with an OCI bundle whose linux.namespaces has no \"pid\"")
	_, err = parseArgs([]string{"--oci-bundle="}, bundleEnv(t, files))
	errContains(t, err, "--oci-bundle= needs the bundle directory")
}

func TestOCIBundleTerminalAndNamespaces(t *testing.T) {
	files := map[string]string{
		"/b/config.json": `{"ociVersion": "1.0.0", "process": {"args": ["sh"], "terminal": false},
			"linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "cgroup"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]}}`,
		"/shared/config.json": `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"namespaces": [{"type": "mount"}]}}`,
	}
	c, err := parseArgs([]string{"--oci-bundle=/shared", "-D/r"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.ShareIPC && c.SharePID && c.ShareUTS, true)
	eq(t, c.NoCgroupNS, true)
	eq(t, c.Network.Private, false)
	eq(t, c.PrivateUsers.Mode, UserNSOff)
	c, err = parseArgs([]string{"--oci-bundle=/b", "-D/r"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Console, ConsolePipe)
	eq(t, c.ShareIPC || c.SharePID || c.ShareUTS, false)
	eq(t, c.NoCgroupNS, false)
	eq(t, c.PrivateUsers.Mode, UserNSPick)
	// The command line's console and user namespace win.
	c, err = parseArgs([]string{"--oci-bundle=/b", "-D/r", "--console=read-only", "--private-users=no"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Console, ConsoleReadOnly)
	eq(t, c.PrivateUsers.Mode, UserNSOff)
}

func FuzzParseOCIConfig(f *testing.F) {
	for _, n := range []string{"runc-spec.json", "full.json"} {
		b, err := os.ReadFile("testdata/oci/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseOCIConfig(data, "/b")
	})
}

// Every mapped field of full.json lands in the Config.
func TestOCIBundleFullMerge(t *testing.T) {
	files := map[string]string{"/b/config.json": string(readOCITestdata(t, "full.json"))}
	c, err := parseArgs([]string{"--oci-bundle=/b", "-M", "web"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	eq(t, c.Directory, "/srv/roots/web")
	eq(t, c.Command, []string{"/bin/httpd", "-f"})
	eq(t, c.Env, []string{"PATH=/bin", "A=1"})
	eq(t, c.Chdir, "/srv")
	eq(t, *c.OCIUser, OCIUser{UID: 1000, GID: 100, Groups: []uint32{10, 20}})
	eq(t, c.Console, ConsolePipe)
	eq(t, c.Capabilities(), capMask(t, "CAP_NET_BIND_SERVICE", "CAP_CHOWN"))
	eq(t, c.AmbientCaps, capMask(t, "CAP_NET_BIND_SERVICE"))
	eq(t, *c.OOMScoreAdjust, 250)
	eq(t, c.Hostname, "web.example")
	eq(t, len(c.Binds), 3)
	eq(t, c.Tmpfs, []TmpfsMount{{Dest: "/scratch", Options: "nosuid,mode=1777,size=1m"}})
	eq(t, c.MaskedPaths, []string{"/secret"})
	eq(t, c.Network.NamespacePath, "/run/netns/web")
	eq(t, c.Network.Private, false)
	eq(t, c.PrivateUsers, PrivateUsers{Mode: UserNSFixed, Shift: 1048576, Range: 65536})
	eq(t, c.NoCgroupNS || c.ShareIPC || c.SharePID || c.ShareUTS, false)
	eq(t, c.Slice, "machine-web.slice")
	eq(t, c.Properties, []string{"CPUWeight=200", "CPUQuota=50%", "MemoryMax=268435456", "TasksMax=64"})
	eq(t, c.CPUAffinity, []int{0, 1})
	if len(c.Warnings) == 0 {
		t.Error("no warnings for the ignored fields")
	}
	// -S and --property= of the command line win: the bundle's properties
	// come first (the later assignment of a name wins).
	c, err = parseArgs([]string{"--oci-bundle=/b", "-M", "web", "-S", "mine", "--property=TasksMax=9"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Slice, "mine.slice")
	eq(t, c.Properties, []string{"CPUWeight=200", "CPUQuota=50%", "MemoryMax=268435456", "TasksMax=64", "TasksMax=9"})
	if l, err := ParseProperties(c.Properties); err != nil || *l.TasksMax != 9 {
		t.Errorf("TasksMax: %v %v", l.TasksMax, err)
	}
}
