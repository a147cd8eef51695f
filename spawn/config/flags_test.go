package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/pflag"
)

func testEnv(t *testing.T) sysEnv {
	t.Helper()
	vars := map[string]string{"FOO": "from-env", "HOME": "/root"}
	return sysEnv{
		getenv:    func(k string) string { return vars[k] },
		getwd:     func() (string, error) { return "/srv/cwd", nil },
		imageDirs: []string{t.TempDir()},
	}
}

func mustParse(t *testing.T, args ...string) *Config {
	t.Helper()
	c, err := parseArgs(args, testEnv(t))
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", args, err)
	}
	return c
}

func TestParseArgsFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *Config)
	}{
		{"directory long", []string{"--directory=/srv/web"}, func(t *testing.T, c *Config) {
			eq(t, c.Directory, "/srv/web")
			eq(t, c.Machine, "web")
		}},
		{"directory separate value", []string{"--directory", "/srv/web"}, func(t *testing.T, c *Config) { eq(t, c.Directory, "/srv/web") }},
		{"directory short attached", []string{"-D/srv/web"}, func(t *testing.T, c *Config) { eq(t, c.Directory, "/srv/web") }},
		{"directory relative made absolute", []string{"-D", "rel/tree/"}, func(t *testing.T, c *Config) {
			eq(t, c.Directory, "/srv/cwd/rel/tree")
			eq(t, c.Machine, "tree")
		}},
		{"no directory uses cwd", nil, func(t *testing.T, c *Config) {
			eq(t, c.Directory, "/srv/cwd")
			eq(t, c.Machine, "cwd")
		}},
		{"machine", []string{"-D", "/x/y", "-M", "web.example"}, func(t *testing.T, c *Config) { eq(t, c.Machine, "web.example") }},
		{"machine long", []string{"-D", "/x/y", "--machine=web"}, func(t *testing.T, c *Config) { eq(t, c.Machine, "web") }},
		{"machine cleaned from dir", []string{"-D", "/x/My_Tree!.d"}, func(t *testing.T, c *Config) { eq(t, c.Machine, "MyTree.d") }},
		{"machine empty resets", []string{"-D", "/x/y", "-M", "a", "-M", ""}, func(t *testing.T, c *Config) { eq(t, c.Machine, "y") }},
		{"hostname", []string{"-D/x/y", "--hostname=h1.lan"}, func(t *testing.T, c *Config) { eq(t, c.Hostname, "h1.lan") }},
		{"boot", []string{"-D/x/y", "-b"}, func(t *testing.T, c *Config) { eq(t, c.Boot, true) }},
		{"boot long", []string{"-D/x/y", "--boot"}, func(t *testing.T, c *Config) { eq(t, c.Boot, true) }},
		{"as-pid2", []string{"-D/x/y", "-a"}, func(t *testing.T, c *Config) { eq(t, c.AsPid2, true) }},
		{"as-pid2 long", []string{"-D/x/y", "--as-pid2"}, func(t *testing.T, c *Config) { eq(t, c.AsPid2, true) }},
		{"setenv", []string{"-D/x/y", "-E", "A=1", "--setenv=B=2", "-EC=3", "-E", "A=4"}, func(t *testing.T, c *Config) {
			eq(t, c.Env, []string{"A=4", "B=2", "C=3"})
		}},
		{"setenv passthrough", []string{"-D/x/y", "-E", "FOO", "-E", "UNSET"}, func(t *testing.T, c *Config) {
			eq(t, c.Env, []string{"FOO=from-env", "UNSET="})
		}},
		{"setenv value with equals", []string{"-D/x/y", "-E", "X=a=b"}, func(t *testing.T, c *Config) { eq(t, c.Env, []string{"X=a=b"}) }},
		{"chdir", []string{"-D/x/y", "--chdir=/var/lib/./x/"}, func(t *testing.T, c *Config) { eq(t, c.Chdir, "/var/lib/x") }},
		{"user", []string{"-D/x/y", "-u", "alice"}, func(t *testing.T, c *Config) { eq(t, c.User, "alice") }},
		{"user long", []string{"-D/x/y", "--user=1000"}, func(t *testing.T, c *Config) { eq(t, c.User, "1000") }},
		{"kill-signal name", []string{"-D/x/y", "--kill-signal=SIGTERM"}, func(t *testing.T, c *Config) { eq(t, c.KillSignal, syscall.SIGTERM) }},
		{"kill-signal short name", []string{"-D/x/y", "--kill-signal=INT"}, func(t *testing.T, c *Config) { eq(t, c.KillSignal, syscall.SIGINT) }},
		{"kill-signal rt", []string{"-D/x/y", "--kill-signal", "SIGRTMIN+3"}, func(t *testing.T, c *Config) { eq(t, c.KillSignal, syscall.Signal(37)) }},
		{"kill-signal number", []string{"-D/x/y", "--kill-signal=9"}, func(t *testing.T, c *Config) { eq(t, c.KillSignal, syscall.SIGKILL) }},
		{"quiet", []string{"-D/x/y", "-q"}, func(t *testing.T, c *Config) { eq(t, c.Quiet, true) }},
		{"quiet long", []string{"-D/x/y", "--quiet"}, func(t *testing.T, c *Config) { eq(t, c.Quiet, true) }},
		{"bind forms", []string{"-D/x/y", "--bind=/a", "--bind", "/b:/c", "--bind-ro=/d:/e:norbind", "--bind=/f:/g:rbind"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{
				{Source: "/a", Dest: "/a", Recursive: true},
				{Source: "/b", Dest: "/c", Recursive: true},
				{Source: "/d", Dest: "/e", ReadOnly: true},
				{Source: "/f", Dest: "/g", Recursive: true},
			})
		}},
		{"bind escape", []string{"-D/x/y", `--bind=/a\:b:/c\:d`}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "/a:b", Dest: "/c:d", Recursive: true}})
		}},
		{"bind escape in single path", []string{"-D/x/y", `--bind-ro=/a\:b`}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "/a:b", Dest: "/a:b", ReadOnly: true, Recursive: true}})
		}},
		{"bind empty source is temporary", []string{"-D/x/y", "--bind=:/scratch"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "", Dest: "/scratch", Recursive: true}})
		}},
		{"bind relative source", []string{"-D/x/y", "--bind=data:/data"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "/srv/cwd/data", Dest: "/data", Recursive: true}})
		}},
		{"bind plus source", []string{"-D/x/y", "--bind=+/var/a:/b"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "/var/a", SourceInRoot: true, Dest: "/b", Recursive: true}})
		}},
		{"bind plus source only", []string{"-D/x/y", "--bind=+/var/a"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds, []BindMount{{Source: "/var/a", SourceInRoot: true, Dest: "/var/a", Recursive: true}})
		}},
		{"bind option list last wins", []string{"-D/x/y", "--bind=/a:/b:rbind,norbind"}, func(t *testing.T, c *Config) {
			eq(t, c.Binds[0].Recursive, false)
		}},
		{"tmpfs", []string{"-D/x/y", "--tmpfs=/t", "--tmpfs", "/u:mode=0700,size=1M"}, func(t *testing.T, c *Config) {
			eq(t, c.Tmpfs, []TmpfsMount{{Dest: "/t"}, {Dest: "/u", Options: "mode=0700,size=1M"}})
		}},
		{"read-only", []string{"-D/x/y", "--read-only"}, func(t *testing.T, c *Config) { eq(t, c.ReadOnly, true) }},
		{"private-network", []string{"-D/x/y", "--private-network"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Private, true)
			eq(t, c.Network.Veth, false)
		}},
		{"network-veth", []string{"-D/x/y", "-n"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Private, true)
			eq(t, c.Network.Veth, true)
		}},
		{"network-veth long", []string{"-D/x/y", "--network-veth"}, func(t *testing.T, c *Config) { eq(t, c.Network.Veth, true) }},
		{"veth extra", []string{"-D/x/y", "--network-veth-extra=ve-a", "--network-veth-extra=ve-b:eth1"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.VethExtra, []VethExtra{{"ve-a", "ve-a"}, {"ve-b", "eth1"}})
			eq(t, c.Network.Private, true)
			eq(t, c.Network.Veth, false)
		}},
		{"bridge implies veth", []string{"-D/x/y", "--network-bridge=br0"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Bridge, "br0")
			eq(t, c.Network.Veth, true)
			eq(t, c.Network.Private, true)
		}},
		{"zone implies veth", []string{"-D/x/y", "--network-zone=lab"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Zone, "lab")
			eq(t, c.Network.Veth, true)
			eq(t, c.Network.Private, true)
		}},
		{"zone 12 chars", []string{"-D/x/y", "--network-zone=abcdefghijkl"}, func(t *testing.T, c *Config) { eq(t, c.Network.Zone, "abcdefghijkl") }},
		{"macvlan", []string{"-D/x/y", "--network-macvlan=eth0", "--network-macvlan=eth1:lan"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.MACVLAN, []string{"eth0:mv-eth0", "eth1:lan"})
			eq(t, c.Network.Private, true)
		}},
		{"ipvlan", []string{"-D/x/y", "--network-ipvlan=eth0"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.IPVLAN, []string{"eth0:iv-eth0"})
			eq(t, c.Network.Private, true)
		}},
		{"interface", []string{"-D/x/y", "--network-interface=eth2", "--network-interface=eth3:inner"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Interfaces, []string{"eth2:eth2", "eth3:inner"})
			eq(t, c.Network.Private, true)
			eq(t, c.Network.Veth, false)
		}},
		{"namespace path", []string{"-D/x/y", "--network-namespace-path=/run/netns/foo"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.NamespacePath, "/run/netns/foo")
			eq(t, c.Network.Private, false)
		}},
		{"namespace path with private-network", []string{"-D/x/y", "--private-network", "--network-namespace-path=/run/netns/foo"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.NamespacePath, "/run/netns/foo")
		}},
		{"ports", []string{"-D/x/y", "--settings=no", "-n", "-p", "80", "--port=tcp:8080:80", "-pudp:53:5353", "--port", "udp:80"}, func(t *testing.T, c *Config) {
			eq(t, c.Network.Ports, []Port{{"tcp", 80, 80}, {"tcp", 8080, 80}, {"udp", 53, 5353}, {"udp", 80, 80}})
		}},
		{"port without network deferred to settings", []string{"-D/x/y", "-p", "80"}, func(t *testing.T, c *Config) {
			eq(t, len(c.Network.Ports), 1)
		}},
		{"resolv-conf modes", []string{"-D/x/y", "--resolv-conf=bind-uplink"}, func(t *testing.T, c *Config) { eq(t, c.ResolvConf, "bind-uplink") }},
		{"resolv-conf boolean", []string{"-D/x/y", "--resolv-conf=no"}, func(t *testing.T, c *Config) { eq(t, c.ResolvConf, "off") }},
		{"timezone", []string{"-D/x/y", "--timezone=symlink"}, func(t *testing.T, c *Config) { eq(t, c.Timezone, "symlink") }},
		{"timezone boolean yes", []string{"-D/x/y", "--timezone=yes"}, func(t *testing.T, c *Config) { eq(t, c.Timezone, "auto") }},
		{"capability", []string{"-D/x/y", "--capability=CAP_NET_ADMIN,sys_time", "--capability=cap_Bpf"}, func(t *testing.T, c *Config) {
			eq(t, c.CapAdd, uint64(1<<CapNetAdmin|1<<CapSysTime|1<<CapBpf))
		}},
		{"capability all", []string{"-D/x/y", "--capability=all"}, func(t *testing.T, c *Config) {
			eq(t, c.Capabilities(), AllCapabilities)
		}},
		{"drop capability", []string{"-D/x/y", "--drop-capability=CAP_SYS_ADMIN,MKNOD"}, func(t *testing.T, c *Config) {
			eq(t, c.CapDrop, uint64(1<<CapSysAdmin|1<<CapMknod))
			eq(t, c.Capabilities()&(1<<CapSysAdmin), uint64(0))
		}},
		{"no-new-privileges", []string{"-D/x/y", "--no-new-privileges=yes"}, func(t *testing.T, c *Config) { eq(t, c.NoNewPrivileges, true) }},
		{"no-new-privileges off", []string{"-D/x/y", "--no-new-privileges=off"}, func(t *testing.T, c *Config) { eq(t, c.NoNewPrivileges, false) }},
		{"console", []string{"-D/x/y", "--console=read-only"}, func(t *testing.T, c *Config) { eq(t, c.Console, ConsoleReadOnly) }},
		{"console autopipe", []string{"-D/x/y", "--console", "autopipe"}, func(t *testing.T, c *Config) { eq(t, c.Console, ConsoleAutoPipe) }},
		{"pipe implies quiet", []string{"-D/x/y", "-P"}, func(t *testing.T, c *Config) {
			eq(t, c.Console, ConsolePipe)
			eq(t, c.Quiet, true)
		}},
		{"pipe long", []string{"-D/x/y", "--pipe"}, func(t *testing.T, c *Config) { eq(t, c.Console, ConsolePipe) }},
		{"settings modes", []string{"-D/x/y", "--settings=override"}, func(t *testing.T, c *Config) { eq(t, c.Settings, "override") }},
		{"settings trusted", []string{"-D/x/y", "--settings=trusted"}, func(t *testing.T, c *Config) { eq(t, c.Settings, "trusted") }},
		{"settings boolean", []string{"-D/x/y", "--settings=0"}, func(t *testing.T, c *Config) { eq(t, c.Settings, "no") }},
		{"settings default", []string{"-D/x/y"}, func(t *testing.T, c *Config) { eq(t, c.Settings, "yes") }},
		{"register", []string{"-D/x/y", "--register=no", "--keep-unit"}, func(t *testing.T, c *Config) {
			eq(t, c.Register, false)
			eq(t, c.KeepUnit, true)
		}},
		{"register default", []string{"-D/x/y"}, func(t *testing.T, c *Config) { eq(t, c.Register, true) }},
		{"uuid", []string{"-D/x/y", "--uuid=0123456789ABCDEF0123456789abcdef"}, func(t *testing.T, c *Config) {
			eq(t, c.UUID, "01234567-89ab-cdef-0123-456789abcdef")
		}},
		{"uuid dashed", []string{"-D/x/y", "--uuid=01234567-89ab-cdef-0123-456789abcdef"}, func(t *testing.T, c *Config) {
			eq(t, c.UUID, "01234567-89ab-cdef-0123-456789abcdef")
		}},
		{"property", []string{"-D/x/y", "--property=MemoryMax=1G", "--property", "CPUWeight=10"}, func(t *testing.T, c *Config) {
			eq(t, c.Properties, []string{"MemoryMax=1G", "CPUWeight=10"})
		}},
		{"no-pager accepted", []string{"-D/x/y", "--no-pager"}, func(t *testing.T, c *Config) {}},
		{"noop unsupported values", []string{"-D/x/y", "--private-users=no", "--volatile=no", "--suppress-sync=0", "--link-journal=no", "--private-users-ownership=off"}, func(t *testing.T, c *Config) {}},
		{"notify-ready", []string{"-D/x/y", "--notify-ready=yes"}, func(t *testing.T, c *Config) { eq(t, c.NotifyReady, true) }},
		{"notify-ready no", []string{"-D/x/y", "--notify-ready=on", "--notify-ready=false"}, func(t *testing.T, c *Config) { eq(t, c.NotifyReady, false) }},
		{"notify-ready default", []string{"-D/x/y"}, func(t *testing.T, c *Config) { eq(t, c.NotifyReady, false) }},
		{"selinux", []string{"-D/x/y", "-Z", "system_u:system_r:container_t:s0:c1,c2", "--selinux-apifs-context=system_u:object_r:container_file_t:s0"}, func(t *testing.T, c *Config) {
			eq(t, c.SELinuxContext, "system_u:system_r:container_t:s0:c1,c2")
			eq(t, c.SELinuxAPIFSContext, "system_u:object_r:container_file_t:s0")
		}},
		{"selinux long and short", []string{"-D/x/y", "--selinux-context=a_t", "-Lb_t"}, func(t *testing.T, c *Config) {
			eq(t, c.SELinuxContext, "a_t")
			eq(t, c.SELinuxAPIFSContext, "b_t")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.args...))
		})
	}
}

func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestParseArgsCommand(t *testing.T) {
	tests := []struct {
		args []string
		cmd  []string
	}{
		{[]string{"-D", "t", "ls", "-l"}, []string{"ls", "-l"}},
		{[]string{"-D", "t", "--", "-q", "x"}, []string{"-q", "x"}},
		{[]string{"-D", "t", "sh", "--", "-q"}, []string{"sh", "--", "-q"}},
		{[]string{"-qD", "t", "echo", "-b", "--boot"}, []string{"echo", "-b", "--boot"}},
		{[]string{"-D", "t"}, nil},
		{[]string{"-D", "t", "-", "x"}, []string{"-", "x"}},
	}
	for _, tt := range tests {
		c := mustParse(t, tt.args...)
		eq(t, c.Command, tt.cmd)
		if c.Boot {
			t.Errorf("%q: options after the command were parsed", tt.args)
		}
		if len(tt.cmd) > 0 && c.cmdline&setStartMode == 0 {
			t.Errorf("%q: command does not mask the start mode", tt.args)
		}
	}
}

func TestParseArgsBundling(t *testing.T) {
	c := mustParse(t, "-qD", "/srv/t", "true")
	eq(t, c.Quiet, true)
	eq(t, c.Directory, "/srv/t")
	eq(t, c.Command, []string{"true"})

	c = mustParse(t, "-bqnD", "/srv/t")
	eq(t, c.Boot, true)
	eq(t, c.Quiet, true)
	eq(t, c.Network.Veth, true)
	eq(t, c.Directory, "/srv/t")

	c = mustParse(t, "-qnp8080:80", "-D/srv/t")
	eq(t, c.Network.Ports, []Port{{"tcp", 8080, 8080 - 8000}})

	// -U is recognised inside a bundle.
	c = mustParse(t, "-bUD", "/srv/t")
	eq(t, c.Boot, true)
	eq(t, c.PrivateUsers.Mode, UserNSPick)

	c = mustParse(t, "-aqPE", "X=1", "-D/srv/t")
	eq(t, c.AsPid2, true)
	eq(t, c.Console, ConsolePipe)
	eq(t, c.Env, []string{"X=1"})
}

func errContains(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-D/x/y", "-b", "-a"}, "--boot and --as-pid2 may not be combined"},
		{[]string{"-D/x/y", "-a", "--boot"}, "--boot and --as-pid2 may not be combined"},
		{[]string{"-D/x/y", "-M", "bad_name"}, `invalid machine name "bad_name"`},
		{[]string{"-D/x/y", "-M", "-web"}, `invalid machine name "-web"`},
		{[]string{"-D/x/y", "-M", strings.Repeat("a", 65)}, "invalid machine name"},
		{[]string{"-D/x/y", "--hostname=a..b"}, `invalid hostname "a..b"`},
		{[]string{"-D/x/y", "--chdir=rel"}, "not an absolute path"},
		{[]string{"-D/x/y", "--chdir=/a/../b"}, "not normalized"},
		{[]string{"-D/x/y", "--chdir=/proc/1"}, "below API file system /proc"},
		{[]string{"-D", "/"}, "host's root directory (-D /) is not supported"},
		{[]string{"-D/x/y", "--console=fancy"}, `unknown console mode "fancy"`},
		{[]string{"-D/x/y", "--settings=maybe"}, "invalid --settings=maybe"},
		{[]string{"-D/x/y", "--register=maybe"}, `--register: invalid boolean "maybe"`},
		{[]string{"-D/x/y", "--no-new-privileges=2"}, "--no-new-privileges: invalid boolean"},
		{[]string{"-D/x/y", "--notify-ready=ready"}, `--notify-ready: "ready" is not a valid notify mode; use yes or no`},
		{[]string{"-D/x/y", "-Z"}, "-Z"},
		{[]string{"-D/x/y", "--kill-signal=SIGFOO"}, `unknown signal "SIGFOO"`},
		{[]string{"-D/x/y", "--kill-signal=65"}, "out of range"},
		{[]string{"-D/x/y", "--kill-signal=RTMIN+31"}, "RTMIN+N needs N in 0-30"},
		{[]string{"-D/x/y", "--capability=CAP_FLY"}, `unknown capability "CAP_FLY"`},
		{[]string{"-D/x/y", "--drop-capability=chown,nope"}, `unknown capability "nope"`},
		{[]string{"-D/x/y", "--resolv-conf=copy"}, "invalid --resolv-conf=copy"},
		{[]string{"-D/x/y", "--timezone=local"}, "invalid --timezone=local"},
		{[]string{"-D/x/y", "--bind=/a:rel"}, `destination "rel" must be an absolute path`},
		{[]string{"-D/x/y", "--bind=/a:"}, `destination "" must be an absolute path`},
		{[]string{"-D/x/y", "--bind=/a:/b:owneridmap"}, "bind option owneridmap is not supported yet"},
		{[]string{"-D/x/y", "--bind=/a:/b:ro"}, `invalid bind mount option "ro"`},
		{[]string{"-D/x/y", `--bind=/a\`}, "trailing backslash"},
		{[]string{"-D/x/y", "--bind=+rel:/b"}, "must be an absolute path after '+'"},
		{[]string{"-D/x/y", "--tmpfs=rel"}, `path "rel" must be absolute`},
		{[]string{"-D/x/y", "--network-zone=abcdefghijklm"}, `network zone name not valid: "abcdefghijklm"`},
		{[]string{"-D/x/y", "--network-zone=a/b"}, "network zone name not valid"},
		{[]string{"-D/x/y", "--network-bridge=br:0"}, "bridge interface name not valid"},
		{[]string{"-D/x/y", "--network-macvlan=eth0:toolongtoolongtoolong"}, "interface name not valid"},
		{[]string{"-D/x/y", "--network-interface=123"}, "interface name not valid"},
		{[]string{"-D/x/y", "--network-veth-extra=a:b:c"}, "expected HOSTIF[:CONTAINERIF]"},
		{[]string{"-D/x/y", "-n", "--network-namespace-path=/run/netns/x"}, "--network-namespace-path= cannot be combined with other network options"},
		{[]string{"-D/x/y", "--network-bridge=br0", "--network-zone=z"}, "--network-bridge= and --network-zone= may not be combined"},
		{[]string{"-D/x/y", "--settings=no", "-p", "80"}, "Cannot use --port= without private networking"},
		{[]string{"-D/x/y", "-n", "-p", "0"}, `invalid port "0"`},
		{[]string{"-D/x/y", "-n", "-p", "65536"}, `invalid port "65536"`},
		{[]string{"-D/x/y", "-n", "-p", "x"}, `invalid port "x"`},
		{[]string{"-D/x/y", "-n", "-p", "sctp:80"}, `invalid port "sctp"`},
		{[]string{"-D/x/y", "-n", "-p", "80:x"}, `invalid port "x"`},
		{[]string{"-D/x/y", "-n", "-p", "80", "-p", "tcp:80:81"}, "duplicate port specification"},
		{[]string{"-D/x/y", "-E", "1X=2"}, "invalid environment variable name"},
		{[]string{"-D/x/y", "-E", "=2"}, "invalid environment variable name"},
		{[]string{"-D/x/y", "--uuid=xyz"}, `invalid UUID "xyz"`},
		{[]string{"-D/x/y", "--uuid=00000000000000000000000000000000"}, "may not be all zeroes"},
		{[]string{"-D/x/y", "--property=novalue"}, "expected NAME=VALUE"},
		{[]string{"-D/x/y", "--boot=yes"}, "option --boot does not take an argument"},
		{[]string{"-D/x/y", "--frobnicate"}, "unknown flag: --frobnicate"},
		{[]string{"-D/x/y", "-K"}, "unknown shorthand flag: 'K'"},
		{[]string{"-D"}, "flag needs an argument"},
		{[]string{"-M", "nosuchmachine"}, `no image for machine "nosuchmachine"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseArgs(tt.args, testEnv(t))
			errContains(t, err, tt.want)
		})
	}
}

func TestParseArgsUnsupported(t *testing.T) {
	for i := range flagTable {
		d := &flagTable[i]
		if d.set != nil || d.long == "help" {
			continue
		}
		var forms [][]string
		val := "somevalue"
		if d.long != "" {
			switch d.kind {
			case noArg, optArg:
				forms = append(forms, []string{"--" + d.long})
			}
			if d.kind != noArg {
				forms = append(forms, []string{"--" + d.long + "=" + val})
			}
			if d.kind == reqArg {
				forms = append(forms, []string{"--" + d.long, val})
			}
		}
		if d.short != "" {
			if d.kind == noArg {
				forms = append(forms, []string{"-" + d.short})
			} else {
				forms = append(forms, []string{"-" + d.short, val})
			}
		}
		for _, f := range forms {
			args := append([]string{"-D/x/y"}, f...)
			args = append(args, "cmd")
			_, err := parseArgs(args, testEnv(t))
			errContains(t, err, d.flagName()+" is not supported yet")
		}
	}
	// Optional-argument flags do not swallow the next word (getopt rule).
	c, err := parseArgs([]string{"-D/x/y", "--volatile", "no"}, testEnv(t))
	if err != nil || c.Volatile != VolatileYes || len(c.Command) != 1 || c.Command[0] != "no" {
		t.Errorf("--volatile no: %+v %v", c, err)
	}
}

func TestParseArgsAbbreviations(t *testing.T) {
	c := mustParse(t, "--dir=/srv/t", "--mach", "web", "--hostn=h", "-qD", "/srv/x", "--read", "--", "--boot")
	eq(t, c.Directory, "/srv/x")
	eq(t, c.Machine, "web")
	eq(t, c.Hostname, "h")
	eq(t, c.ReadOnly, true)
	eq(t, c.Command, []string{"--boot"})
	// A separate value is not taken for an option.
	c = mustParse(t, "--user", "--dir", "-D", "/srv/t")
	eq(t, c.User, "--dir")
	c = mustParse(t, "-u", "--dir", "-D/srv/t")
	eq(t, c.User, "--dir")
	c = mustParse(t, "-qu", "--dir", "-D/srv/t")
	eq(t, c.User, "--dir")
	// Exact names win over longer ones sharing the prefix.
	c = mustParse(t, "-D/srv/t", "--bind=/a", "--network-veth")
	eq(t, len(c.Binds), 1)
	eq(t, c.Network.Veth, true)
	_, err := parseArgs([]string{"-D/srv/t", "--net"}, testEnv(t))
	errContains(t, err, "option --net is ambiguous; possibilities: --network-interface")
	_, err = parseArgs([]string{"-D/srv/t", "--priv"}, testEnv(t))
	errContains(t, err, "option --priv is ambiguous")
	_, err = parseArgs([]string{"-D/srv/t", "--oci-b=/b"}, testEnv(t))
	errContains(t, err, "--oci-bundle=/b: open /b/config.json")
}

func TestParseArgsHelpVersion(t *testing.T) {
	for _, a := range [][]string{{"-h"}, {"--help"}, {"-qh"}, {"-D/x", "--help", "--bogus"}, {"--he"}} {
		_, err := parseArgs(a, testEnv(t))
		if !errors.Is(err, pflag.ErrHelp) {
			t.Errorf("%q: got %v, want ErrHelp", a, err)
		}
	}
	_, err := parseArgs([]string{"--vers"}, testEnv(t))
	if !errors.Is(err, ErrVersion) {
		t.Errorf("--version: got %v", err)
	}
	// Like getopt, --help after the command belongs to the command.
	c := mustParse(t, "-D/x/y", "ls", "--help")
	eq(t, c.Command, []string{"ls", "--help"})
}

func TestUsageDocumentsEveryFlag(t *testing.T) {
	u := Usage()
	for i := range flagTable {
		d := &flagTable[i]
		if d.long != "" && !strings.Contains(u, "--"+d.long) {
			t.Errorf("usage lacks --%s", d.long)
		}
		if d.short != "" && !strings.Contains(u, "-"+d.short+" ") && !strings.Contains(u, "-"+d.short+"\n") {
			t.Errorf("usage lacks -%s", d.short)
		}
	}
	for _, g := range flagGroups[1:] {
		if !strings.Contains(u, "\n"+g+":\n") {
			t.Errorf("usage lacks group %s", g)
		}
	}
	// Every option of systemd-nspawn 252 is implemented (issue 20): none
	// is marked, and none may come back unmarked.
	if strings.Contains(u, "(not supported yet)") {
		t.Errorf("usage marks a flag not supported:\n%s", u)
	}
	for i := range flagTable {
		if d := &flagTable[i]; d.set == nil && d.long != "help" {
			t.Errorf("--%s -%s has no set function", d.long, d.short)
		}
	}
}

func TestMachineLookup(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	env.imageDirs = []string{filepath.Join(dir, "missing"), dir}
	c, err := parseArgs([]string{"-M", "web"}, env)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Directory, filepath.Join(dir, "web"))
	eq(t, c.Machine, "web")

	_, err = FindMachineDirectory("disk", []string{dir})
	errContains(t, err, "is a disk image, not a directory: run it with -i "+filepath.Join(dir, "disk.raw"))
	c, err = parseArgs([]string{"-M", "disk"}, env)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Image, filepath.Join(dir, "disk.raw"))
	eq(t, c.Directory, "")
	eq(t, c.Machine, "disk")
	_, err = FindMachineDirectory("file", []string{dir})
	errContains(t, err, "is neither a directory nor a disk image")
	_, err = FindMachineDirectory("none", []string{dir})
	errContains(t, err, `no image for machine "none"`)

	eq(t, ImageDirs(func(string) string { return "" }),
		[]string{"/var/lib/machines", "/usr/local/lib/machines", "/usr/lib/machines", "/var/lib/container"})
	eq(t, ImageDirs(func(k string) string {
		if k == "NETSPAWN_IMAGES_DIR" {
			return dir
		}
		return ""
	}), []string{dir})

	// -D wins over the lookup.
	c, err = parseArgs([]string{"-M", "other", "-D", "/srv/t"}, env)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Directory, "/srv/t")
	eq(t, c.Machine, "other")
}

func TestDirectoryNames(t *testing.T) {
	env := testEnv(t)
	env.getwd = func() (string, error) { return "/", nil }
	_, err := parseArgs(nil, env)
	errContains(t, err, "(-D /) is not supported")

	_, err = parseArgs([]string{"-D", "/srv/___"}, testEnv(t))
	errContains(t, err, "cannot derive a machine name from directory /srv/___, please use -M NAME")
	c := mustParse(t, "-D", "/srv/___", "-M", "ok")
	eq(t, c.Machine, "ok")
}

func TestSettingsMaskFromFlags(t *testing.T) {
	c := mustParse(t, "-D/x/y", "-b", "-E", "A=1", "-u", "x", "--capability=chown", "--kill-signal=TERM",
		"--uuid=0123456789abcdef0123456789abcdef", "-n", "-p", "80", "--read-only", "--bind=/a",
		"--chdir=/", "--hostname=h", "--no-new-privileges=1", "--resolv-conf=off", "--timezone=off", "-P")
	want := setStartMode | setEnvironment | setUser | setCapability | setKillSignal | setMachineID |
		setNetwork | setPorts | setReadOnly | setCustomMounts | setWorkingDirectory | setHostname |
		setNoNewPrivileges | setResolvConf | setTimezone | setConsole | setDirectory
	eq(t, c.cmdline, want)
	eq(t, mustParse(t, "-D/x/y", "--settings=override", "-b").cmdline, settingMask(0))
	eq(t, mustParse(t, "-D/x/y", "--settings=no").cmdline, setAll)
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"1", "yes", "Y", "true", "T", "on", "YES"} {
		if b, err := ParseBool(s); err != nil || !b {
			t.Errorf("%s: %v %v", s, b, err)
		}
	}
	for _, s := range []string{"0", "no", "N", "false", "f", "OFF"} {
		if b, err := ParseBool(s); err != nil || b {
			t.Errorf("%s: %v %v", s, b, err)
		}
	}
	for _, s := range []string{"", "2", "maybe", "enable"} {
		if _, err := ParseBool(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("-qD\x00/srv/t\x00ls\x00-l")
	f.Add("-bUD\x00dir")
	f.Add("--bind=/a\\:b:/c:norbind\x00--port=udp:53:5353\x00-n")
	f.Add("--network-zone=abc\x00--capability=all\x00--kill-signal=RTMIN+3")
	f.Add("--settings=override\x00-M\x00web\x00--\x00-x")
	env := sysEnv{
		getenv:    func(string) string { return "" },
		getwd:     func() (string, error) { return "/srv/cwd", nil },
		imageDirs: []string{"/nonexistent-netspawn-fuzz"},
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseArgs(strings.Split(s, "\x00"), env)
		if err == nil {
			if !ValidMachineName(c.Machine) {
				t.Errorf("accepted invalid machine name %q", c.Machine)
			}
			_ = c.Capabilities()
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error %q", err)
		}
	})
}

// TestOneTable checks the flag and settings tables are whole: a supported
// option or key has its handler in its own entry, and only an unsupported
// one may carry a no-op value rule.
func TestOneTable(t *testing.T) {
	for _, d := range flagTable {
		if d.set != nil && d.noop != nil {
			t.Errorf("--%s%s: supported, yet has a no-op rule", d.long, d.short)
		}
	}
	for k, s := range settingKeys {
		if s.parse != nil && s.noop != nil {
			t.Errorf("%s: supported, yet has a no-op rule", k)
		}
	}
}

// Every option that takes a boolean among other values takes every
// spelling systemd's parse_boolean takes.
func TestBooleanSpellings(t *testing.T) {
	for _, v := range []string{"1", "yes", "y", "true", "t", "on", "YES", "On"} {
		if m, _, _, err := ParsePrivateUsers(v); err != nil || m != UserNSYes {
			t.Errorf("--private-users=%s: %v %v", v, m, err)
		}
		if o, err := ParseOwnership(v); err != nil || o != OwnershipChown {
			t.Errorf("--private-users-ownership=%s: %v %v", v, o, err)
		}
		if m, err := ParseVolatile(v); err != nil || m != VolatileYes {
			t.Errorf("--volatile=%s: %v %v", v, m, err)
		}
	}
	for _, v := range []string{"0", "no", "n", "false", "f", "off", "NO"} {
		if m, _, _, err := ParsePrivateUsers(v); err != nil || m != UserNSOff {
			t.Errorf("--private-users=%s: %v %v", v, m, err)
		}
		if o, err := ParseOwnership(v); err != nil || o != OwnershipOff {
			t.Errorf("--private-users-ownership=%s: %v %v", v, o, err)
		}
		if m, err := ParseVolatile(v); err != nil || m != VolatileNo {
			t.Errorf("--volatile=%s: %v %v", v, m, err)
		}
	}
}
