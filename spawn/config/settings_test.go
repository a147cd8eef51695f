package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func apply(t *testing.T, c *Config, content string, trusted bool, mode string) error {
	t.Helper()
	return ApplySettings(c, strings.NewReader(content), "web.nspawn", trusted, mode)
}

func mustApply(t *testing.T, c *Config, content string, trusted bool, mode string) *Config {
	t.Helper()
	if err := apply(t, c, content, trusted, mode); err != nil {
		t.Fatalf("ApplySettings: %v", err)
	}
	return c
}

const fullFile = `# example
[Exec]
Boot=yes
Parameters=--log-level=debug "quoted arg"
Environment=A=1 "B=two words"
User=alice
WorkingDirectory=/home/alice
Capability=CAP_SYS_TIME cap_bpf
DropCapability=CAP_MKNOD
KillSignal=SIGRTMIN+4
Personality=` + "%PERS%" + `
MachineID=0123456789abcdef0123456789abcdef
PrivateUsers=no
NotifyReady=no
Hostname=web1
ResolvConf=bind-host
Timezone=copy
LinkJournal=no
SuppressSync=no
NoNewPrivileges=yes
Ephemeral=no

[Files]
ReadOnly=yes
Volatile=no
Bind=/srv/data:/data:norbind
BindReadOnly=/etc/ssl
TemporaryFileSystem=/scratch:size=10M
PrivateUsersOwnership=off

[Network]
VirtualEthernet=yes
VirtualEthernetExtra=ve-x:eth9
Port=tcp:8080:80
Port=udp:53
`

func TestApplySettingsAllKeys(t *testing.T) {
	c := mustParse(t, "-D/srv/web")
	content := strings.ReplaceAll(fullFile, "%PERS%", nativePersonality)
	mustApply(t, c, content, true, "yes")
	eq(t, c.Boot, true)
	eq(t, c.Command, []string{"--log-level=debug", "quoted arg"})
	eq(t, c.Env, []string{"A=1", "B=two words"})
	eq(t, c.User, "alice")
	eq(t, c.Chdir, "/home/alice")
	eq(t, c.CapAdd, uint64(1<<CapSysTime|1<<CapBpf))
	eq(t, c.CapDrop, uint64(1<<CapMknod))
	eq(t, c.KillSignal, SigRTMin+4)
	eq(t, c.UUID, "01234567-89ab-cdef-0123-456789abcdef")
	eq(t, c.Hostname, "web1")
	eq(t, c.ResolvConf, "bind-host")
	eq(t, c.Timezone, "copy")
	eq(t, c.NoNewPrivileges, true)
	eq(t, c.ReadOnly, true)
	eq(t, c.Binds, []BindMount{{Source: "/srv/data", Dest: "/data"}, {Source: "/etc/ssl", Dest: "/etc/ssl", ReadOnly: true, Recursive: true}})
	eq(t, c.Tmpfs, []TmpfsMount{{Dest: "/scratch", Options: "size=10M"}})
	eq(t, c.Network.Veth, true)
	eq(t, c.Network.Private, true)
	eq(t, c.Network.VethExtra, []VethExtra{{"ve-x", "eth9"}})
	eq(t, c.Network.Ports, []Port{{"tcp", 8080, 80}, {"udp", 53, 53}})
	eq(t, c.Capabilities()&(1<<CapNetAdmin) != 0, true)
	eq(t, len(c.Warnings), 0)
}

func TestApplySettingsNetworkKeys(t *testing.T) {
	c := mustApply(t, mustParse(t, "-D/srv/web"), "[Network]\nBridge=br0\nMACVLAN=eth0 eth1:lan\nIPVLAN=eth2\nInterface=eth3\n", true, "yes")
	eq(t, c.Network.Bridge, "br0")
	eq(t, c.Network.Veth, true)
	eq(t, c.Network.Private, true)
	eq(t, c.Network.MACVLAN, []string{"eth0:mv-eth0", "eth1:lan"})
	eq(t, c.Network.IPVLAN, []string{"eth2:iv-eth2"})
	eq(t, c.Network.Interfaces, []string{"eth3:eth3"})

	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Network]\nZone=lab\n", true, "yes")
	eq(t, c.Network.Zone, "lab")
	eq(t, c.Network.Veth, true)

	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Network]\nPrivate=yes\n", true, "yes")
	eq(t, c.Network.Private, true)
	eq(t, c.Network.Veth, false)
}

func TestApplySettingsPrecedence(t *testing.T) {
	file := "[Exec]\nUser=fromfile\nHostname=filehost\nEnvironment=F=1\nBoot=yes\n[Network]\nPrivate=yes\n[Files]\nReadOnly=yes\n"

	// Default: the command line wins for what it set; the rest comes from the file.
	c := mustApply(t, mustParse(t, "-D/srv/web", "-u", "cli", "-E", "C=1", "-n", "echo"), file, true, "yes")
	eq(t, c.User, "cli")
	eq(t, c.Hostname, "filehost")
	eq(t, c.Env, []string{"C=1"})
	eq(t, c.Boot, false)
	eq(t, c.Command, []string{"echo"})
	eq(t, c.Network.Veth, true) // -n kept
	eq(t, c.ReadOnly, true)

	// trusted: same precedence.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=trusted", "-u", "cli"), file, false, "trusted")
	eq(t, c.User, "cli")
	eq(t, c.Network.Private, true)

	// override: the file wins, and Private=yes alone replaces -n (nspawn's #12313 behaviour).
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=override", "-u", "cli", "-E", "C=1", "-n", "echo"), file, true, "override")
	eq(t, c.User, "fromfile")
	eq(t, c.Env, []string{"F=1"})
	eq(t, c.Boot, true)
	eq(t, c.Command, []string(nil))
	eq(t, c.Network.Private, true)
	eq(t, c.Network.Veth, false)

	// no: nothing is loaded.
	c = mustParse(t, "-D/srv/web", "--settings=no")
	mustApply(t, c, "[Exec]\nUser=x\nBogus\n", true, "no")
	eq(t, c.User, "")

	// Parameters= without Boot= still replaces the command when the command line has none.
	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Exec]\nParameters=/bin/echo hi\n", true, "yes")
	eq(t, c.Command, []string{"/bin/echo", "hi"})
	eq(t, c.Boot, false)

	// ProcessTwo=
	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Exec]\nProcessTwo=yes\n", true, "yes")
	eq(t, c.AsPid2, true)

	// NotifyReady= is not privileged: an untrusted file sets it too; the
	// command line's --notify-ready= wins unless override.
	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Exec]\nNotifyReady=yes\n", false, "yes")
	eq(t, c.NotifyReady, true)
	c = mustApply(t, mustParse(t, "-D/srv/web", "--notify-ready=no"), "[Exec]\nNotifyReady=yes\n", true, "yes")
	eq(t, c.NotifyReady, false)
	c = mustApply(t, mustParse(t, "-D/srv/web", "--notify-ready=no", "--settings=override"), "[Exec]\nNotifyReady=yes\n", true, "override")
	eq(t, c.NotifyReady, true)
	c = mustApply(t, mustParse(t, "-D/srv/web", "--notify-ready=yes"), "[Exec]\nNotifyReady=\n", true, "override")
	eq(t, c.NotifyReady, true)
}

func TestApplySettingsCapabilities(t *testing.T) {
	// File adds and drops on top of the defaults.
	c := mustApply(t, mustParse(t, "-D/srv/web"), "[Exec]\nCapability=CAP_SYS_TIME\nDropCapability=CAP_KILL\n", true, "yes")
	caps := c.Capabilities()
	eq(t, caps&(1<<CapSysTime) != 0, true)
	eq(t, caps&(1<<CapKill) != 0, false)

	// The command line's capability settings mask the file's.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--drop-capability=CAP_CHOWN"), "[Exec]\nCapability=CAP_SYS_TIME\nDropCapability=CAP_KILL\n", true, "yes")
	caps = c.Capabilities()
	eq(t, caps&(1<<CapSysTime) != 0, false)
	eq(t, caps&(1<<CapKill) != 0, true)
	eq(t, caps&(1<<CapChown) != 0, false)

	// With override, the file's Capability= re-adds what the command line dropped.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=override", "--drop-capability=CAP_CHOWN,CAP_KILL"), "[Exec]\nCapability=CAP_CHOWN\n", true, "override")
	caps = c.Capabilities()
	eq(t, caps&(1<<CapChown) != 0, true)
	eq(t, caps&(1<<CapKill) != 0, false)

	// Untrusted: Capability= ignored with a warning, DropCapability= still applies.
	c = mustApply(t, mustParse(t, "-D/srv/web"), "[Exec]\nCapability=CAP_SYS_TIME\nDropCapability=CAP_KILL\n", false, "yes")
	caps = c.Capabilities()
	eq(t, caps&(1<<CapSysTime) != 0, false)
	eq(t, caps&(1<<CapKill) != 0, false)
	eq(t, c.Warnings, []string{"web.nspawn:2: ignoring Capability= setting, file is not trusted"})

	// Override: a trusted non-private network setting takes NET_ADMIN added on the command line away.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=override", "--capability=CAP_NET_ADMIN"), "[Network]\nPrivate=no\n", true, "override")
	eq(t, c.Capabilities()&(1<<CapNetAdmin) != 0, false)
}

func TestApplySettingsTrust(t *testing.T) {
	file := `[Exec]
MachineID=0123456789abcdef0123456789abcdef
LimitNOFILE=1024
User=u
[Files]
Bind=/a
TemporaryFileSystem=/t
Overlay=/a:/b
[Network]
VirtualEthernet=yes
Port=80
`
	c := mustApply(t, mustParse(t, "-D/srv/web"), file, false, "yes")
	eq(t, c.UUID, "")
	eq(t, len(c.Binds), 0)
	eq(t, len(c.Tmpfs), 0)
	eq(t, c.Network.Private, false)
	eq(t, len(c.Network.Ports), 0)
	eq(t, c.User, "u") // not privileged
	want := []string{
		"web.nspawn:2: ignoring MachineID= setting, file is not trusted",
		"web.nspawn:6: ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file is not trusted",
		"web.nspawn:10: ignoring [Network] settings, file is not trusted",
		"web.nspawn:11: ignoring Port= setting, file is not trusted",
		"web.nspawn:3: ignoring LimitNOFILE= setting, file is not trusted",
		"web.nspawn:8: ignoring Overlay=, OverlayReadOnly= and Inaccessible= settings, file is not trusted",
	}
	eq(t, c.Warnings, want)

	// --settings=trusted trusts the file wherever it is.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=trusted"), file, false, "trusted")
	eq(t, *c.Rlimits[unix.RLIMIT_NOFILE], Rlimit{1024, 1024})

	// Masked by the command line: no warning (nspawn is silent too).
	c = mustApply(t, mustParse(t, "-D/srv/web", "--bind=/x"), "[Files]\nBind=/a\n", false, "yes")
	eq(t, len(c.Warnings), 0)
	eq(t, c.Binds[0].Source, "/x")
}

func TestApplySettingsErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"[Network]\nPort=x\n", `web.nspawn:2: [Network] Port=: invalid port "x"`},
		{"[Network]\n\n# c\nPort=80\nPort=80\n", `web.nspawn:5: [Network] Port=: duplicate port specification "80"`},
		{"[Exec]\nBoot=perhaps\n", `web.nspawn:2: [Exec] Boot=: invalid boolean "perhaps"`},
		{"[Exec]\nBoot=yes\nProcessTwo=yes\n", "web.nspawn:3: [Exec] ProcessTwo=: both Boot= and ProcessTwo= are enabled"},
		{"[Exec]\nPivotRoot=sysroot\n", `web.nspawn:2: [Exec] PivotRoot=: --pivot-root=sysroot: "sysroot" is not an absolute path`},
		{"[Exec]\nPersonality=alpha\n", `web.nspawn:2: [Exec] Personality=: unknown or unsupported personality "alpha"`},
		{"[Exec]\nLimitNOFILE=10:5\n", `web.nspawn:2: [Exec] LimitNOFILE=: invalid limit "10:5": the soft limit is above the hard limit`},
		{"[Exec]\nOOMScoreAdjust=2000\n", `[Exec] OOMScoreAdjust=: invalid OOM score adjustment "2000": use an integer from -1000 to 1000`},
		{"[Exec]\nCPUAffinity=0,x\n", `[Exec] CPUAffinity=: invalid CPU "x"`},
		{"[Exec]\nAmbientCapability=CAP_NOPE\n", `[Exec] AmbientCapability=: unknown capability "CAP_NOPE"`},
		{"[Exec]\nEphemeral=maybe\n", `web.nspawn:2: [Exec] Ephemeral=: invalid boolean "maybe"`},
		{"[Exec]\nNotifyReady=ready\n", `web.nspawn:2: [Exec] NotifyReady=: invalid boolean "ready"`},
		{"[Exec]\nSystemCallFilter=~@nosuchgroup\n", "SystemCallFilter="},
		{"[Files]\nVolatile=sometimes\n", "web.nspawn:2: [Files] Volatile=: --volatile=sometimes: not yes, no, state or overlay"},
		{"[Files]\nOverlay=/a\n", "web.nspawn:2: [Files] Overlay=: --overlay=/a: need at least a lower and an upper directory"},
		{"[Exec]\nPrivateUsers=maybe\n", "web.nspawn:2: [Exec] PrivateUsers=: --private-users=maybe"},
		{"[Exec]\nCapability=CAP_NOPE\n", `web.nspawn:2: [Exec] Capability=: unknown capability "CAP_NOPE"`},
		{"[Exec]\nKillSignal=SIGNOPE\n", `[Exec] KillSignal=: unknown signal "SIGNOPE"`},
		{"[Exec]\nMachineID=zz\n", `[Exec] MachineID=: invalid UUID "zz"`},
		{"[Exec]\nHostname=-bad\n", `[Exec] Hostname=: invalid hostname "-bad"`},
		{"[Exec]\nResolvConf=sometimes\n", `[Exec] ResolvConf=: invalid mode "sometimes"`},
		{"[Exec]\nTimezone=utc\n", `[Exec] Timezone=: invalid mode "utc"`},
		{"[Exec]\nWorkingDirectory=rel\n", "[Exec] WorkingDirectory=: working directory rel is not an absolute path"},
		{"[Exec]\nEnvironment=NOEQUALS\n", `[Exec] Environment=: invalid assignment "NOEQUALS"`},
		{"[Exec]\nParameters=\"open\n", "[Exec] Parameters=: unterminated quote"},
		{"[Files]\nBind=/a:rel\n", `web.nspawn:2: [Files] Bind=: destination "rel" must be an absolute path`},
		{"[Files]\nTemporaryFileSystem=rel\n", `[Files] TemporaryFileSystem=: path "rel" must be absolute`},
		{"[Files]\nReadOnly=2\n", `[Files] ReadOnly=: invalid boolean "2"`},
		{"[Network]\nZone=waytoolongzone\n", `[Network] Zone=: network zone name not valid: "waytoolongzone"`},
		{"[Network]\nBridge=a b\n", `[Network] Bridge=: invalid interface name "a b"`},
		{"[Network]\nMACVLAN=eth0:a/b\n", "[Network] MACVLAN=: interface: interface name not valid"},
		{"[Network]\nVirtualEthernetExtra=a:b:c\n", "[Network] VirtualEthernetExtra=: expected HOSTIF[:CONTAINERIF]"},
		{"User=x\n", "web.nspawn: line 1: User= appears before any [Section]"},
		{"[Exec]\nnonsense\n", `web.nspawn: line 2: expected KEY=VALUE, found "nonsense"`},
		{"[Exec]\nBoot=yes\n[Network]\nPort=80\n", "Cannot use --port= without private networking"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			err := apply(t, mustParse(t, "-D/srv/web", "-a"), tt.file, true, "yes")
			if strings.Contains(tt.file, "Boot=yes\n[Network]") {
				err = apply(t, mustParse(t, "-D/srv/web"), tt.file, true, "yes")
			}
			errContains(t, err, tt.want)
		})
	}
	// The command line's -a vs the file's Boot=: the command line wins, so no conflict.
	c := mustApply(t, mustParse(t, "-D/srv/web", "-a"), "[Exec]\nBoot=yes\n", true, "yes")
	eq(t, c.Boot, false)
	eq(t, c.AsPid2, true)
	// With override the file's Boot= replaces -a.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--settings=override", "-a"), "[Exec]\nBoot=yes\n", true, "override")
	eq(t, c.Boot, true)
	eq(t, c.AsPid2, false)
}

func TestApplySettingsLenient(t *testing.T) {
	file := `[Exec]
Unknown=1
PrivateUsers=no
NotifyReady=no
LinkJournal=no
[Files]
PrivateUsersChown=no
[Weird]
Key=1
[Exec]
KillSignal=TERM
User=a \
  b
`
	c := mustApply(t, mustParse(t, "-D/srv/web"), file, true, "yes")
	eq(t, c.KillSignal, syscall.SIGTERM)
	eq(t, c.User, "a    b")
	eq(t, c.Warnings, []string{
		"web.nspawn:2: unknown key [Exec] Unknown=, ignoring",
		"web.nspawn:9: unknown section [Weird], ignoring Key=",
	})
	// Line numbers after a continuation.
	err := apply(t, mustParse(t, "-D/srv/web"), "[Exec]\nUser=a \\\n b\nKillSignal=x\n", true, "yes")
	errContains(t, err, "web.nspawn:4: [Exec] KillSignal=")
}

func TestFindSettings(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	run := filepath.Join(root, "run")
	machines := filepath.Join(root, "machines")
	for _, d := range []string{etc, run, filepath.Join(machines, "web"), filepath.Join(machines, "db"), filepath.Join(machines, "x")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(machines, "web.nspawn"), "[Exec]\nUser=beside\n")
	write(filepath.Join(machines, "db.nspawn"), "[Exec]\nUser=beside\n")
	write(filepath.Join(run, "db.nspawn"), "[Exec]\nUser=run\n[Network]\nVirtualEthernet=yes\nPort=5432\n")
	dirs := []string{etc, run}

	p, trusted, err := FindSettings("web", filepath.Join(machines, "web"), dirs)
	eq(t, err, nil)
	eq(t, p, filepath.Join(machines, "web.nspawn"))
	eq(t, trusted, false)

	p, trusted, err = FindSettings("db", filepath.Join(machines, "db"), dirs)
	eq(t, err, nil)
	eq(t, p, filepath.Join(run, "db.nspawn"))
	eq(t, trusted, true)

	write(filepath.Join(etc, "db.nspawn"), "[Exec]\nUser=etc\n")
	p, _, _ = FindSettings("db", filepath.Join(machines, "db"), dirs)
	eq(t, p, filepath.Join(etc, "db.nspawn"))

	p, _, err = FindSettings("x", filepath.Join(machines, "x"), dirs)
	eq(t, err, nil)
	eq(t, p, "")

	// LoadSettings: finds, applies, records.
	c := mustParse(t, "-D", filepath.Join(machines, "web"))
	if err := c.loadSettings(dirs); err != nil {
		t.Fatal(err)
	}
	eq(t, c.User, "beside")
	eq(t, c.SettingsFile, filepath.Join(machines, "web.nspawn"))
	eq(t, c.SettingsTrusted, false)

	os.Remove(filepath.Join(etc, "db.nspawn"))
	c = mustParse(t, "-D", filepath.Join(machines, "db"), "-p", "5432")
	if err := c.loadSettings(dirs); err != nil {
		t.Fatal(err)
	}
	eq(t, c.SettingsTrusted, true)
	eq(t, c.Network.Veth, true)
	eq(t, c.Network.Ports, []Port{{"tcp", 5432, 5432}}) // from the command line

	// A disk image's file is beside the image: web.raw has web.nspawn.
	c = mustParse(t, "-i", filepath.Join(machines, "web.raw"))
	if err := c.loadSettings(dirs); err != nil {
		t.Fatal(err)
	}
	eq(t, c.User, "beside")
	eq(t, c.SettingsFile, filepath.Join(machines, "web.nspawn"))

	// --settings=no: nothing loaded, and the final check runs.
	c = mustParse(t, "-D", filepath.Join(machines, "web"), "--settings=no")
	if err := c.loadSettings(dirs); err != nil {
		t.Fatal(err)
	}
	eq(t, c.User, "")
	eq(t, c.SettingsFile, "")

	// No file: the port check runs at load time.
	c = mustParse(t, "-D", filepath.Join(machines, "x"), "-p", "80")
	errContains(t, c.loadSettings(dirs), "Cannot use --port= without private networking")

	// A bad file names itself.
	write(filepath.Join(machines, "x.nspawn"), "[Network]\nPort=x\n")
	c = mustParse(t, "-D", filepath.Join(machines, "x"))
	errContains(t, c.loadSettings(dirs), filepath.Join(machines, "x.nspawn")+`:2: [Network] Port=: invalid port "x"`)

	eq(t, SettingsSearchDirs(func(string) string { return "" }), DefaultSettingsDirs)
	eq(t, SettingsSearchDirs(func(string) string { return "/a:/b" }), []string{"/a", "/b"})
}

func FuzzApplySettings(f *testing.F) {
	f.Add(strings.ReplaceAll(fullFile, "%PERS%", "x86-64"), true, "yes")
	f.Add("[Network]\nPort=80\nZone=abc\n", false, "override")
	f.Add("[Exec]\nUser=a \\\n b\n", true, "trusted")
	f.Add("[Files]\nBind=/a\\:b:/c:norbind\n", true, "yes")
	f.Fuzz(func(t *testing.T, content string, trusted bool, mode string) {
		c := &Config{Directory: "/srv/web", Machine: "web", Register: true, Settings: "yes"}
		err := ApplySettings(c, strings.NewReader(content), "f.nspawn", trusted, mode)
		if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("multi-line error %q", err)
		}
		_ = c.Capabilities()
	})
}
