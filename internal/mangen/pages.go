package main

import (
	"strings"

	"github.com/netspawn/netspawn/internal/ctlcmd"
	"github.com/netspawn/netspawn/internal/mandoc"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// meta holds what every page's header and footer show.
type meta struct {
	date, version string
}

func (m meta) page(name, section, summary string) *mandoc.Page {
	src := "netspawn"
	if m.version != "" {
		src += " " + m.version
	}
	return &mandoc.Page{Name: name, Section: section, Date: m.date, Source: src, Manual: "netspawn manual", Summary: summary}
}

func para(s string) mandoc.Block { return mandoc.Block{Text: s} }

func example(text string, code ...string) mandoc.Block { return mandoc.Block{Text: text, Code: code} }

func item(tag []mandoc.Span, text string) mandoc.Block { return mandoc.Block{Tag: tag, Text: text} }

// optionTag sets "-D, --directory=PATH" in bold and italic.
func optionTag(o *option) []mandoc.Span {
	var t []mandoc.Span
	for i, n := range o.names() {
		if i > 0 {
			t = append(t, mandoc.R(", "))
		}
		t = append(t, mandoc.B(n))
	}
	switch {
	case o.arg == config.ArgRequired && o.long != "":
		t = append(t, mandoc.R("="), mandoc.I(o.meta))
	case o.arg == config.ArgRequired:
		t = append(t, mandoc.R(" "), mandoc.I(o.meta))
	case o.arg == config.ArgOptional && o.meta != "":
		t = append(t, mandoc.R("[="), mandoc.I(o.meta), mandoc.R("]"))
	}
	return t
}

// optionText is an option's help with its values, default and support.
func optionText(o *option) string {
	s := sentence(o.help)
	if len(o.values) > 0 && len(o.values) <= 20 && o.meta != "BOOLEAN" && o.meta != "BOOL" && !mentionsAll(o.help, o.values) {
		s += " One of: `" + strings.Join(o.values, "`, `") + "`."
	}
	if o.def != "" && len(o.def) <= 40 { // longer ones are lists the help describes
		s += " Default: `" + o.def + "`."
	}
	if !o.supported {
		s += " Not supported yet: netspawn says so and refuses it."
	}
	return s
}

// optionSections are the OPTIONS of a getopt-style program, one
// sub-section per group.
func optionSections(p program) mandoc.Section {
	sec := mandoc.Section{Title: "Options"}
	for _, g := range p.groups {
		if g != "" {
			sec.Blocks = append(sec.Blocks, mandoc.Block{Sub: g})
		}
		for i := range p.opts {
			if o := &p.opts[i]; o.group == g {
				sec.Blocks = append(sec.Blocks, item(optionTag(o), optionText(o)))
			}
		}
	}
	return sec
}

// netspawnPage is netspawn(1).
func netspawnPage(m meta) *mandoc.Page {
	p := m.page("netspawn", "1", "run a command or boot an OS in a light-weight container, with real networking")
	p.Synopsis = [][]string{
		{"netspawn", "[OPTIONS...]", "[COMMAND", "[ARGUMENTS...]]"},
		{"netspawn", "-b", "[OPTIONS...]", "[ARGUMENTS...]"},
	}
	p.Sections = []mandoc.Section{
		{Title: "Description", Blocks: []mandoc.Block{
			para(`netspawn runs a command, or with -b the tree's init, in a container made from a directory tree: new mount, PID, IPC, UTS and cgroup namespaces, and with -n or a zone a network namespace of its own with an address, a route, DNS and NAT. It takes the command line options and the .nspawn settings files of systemd-nspawn(1), so recipes written for systemd-nspawn work with the program's name changed, on a host with or without systemd, D-Bus, networkd, resolved or machined.`),
			para(`Containers register with netspawnd(8), which netspawn starts on demand when its socket does not answer: netspawnd makes the container's links, hands out its addresses, keeps its NAT and port forwards in nftables and answers DNS for machine names. netspawnctl(1) lists and manages the running machines and the images. The settings of a machine can live in a MACHINE.nspawn file; see netspawn.nspawn(5).`),
			para(`Options end at the first argument that is not an option: the rest is the command and its arguments (with -b, the arguments of the init). Short options bundle (-qD dir), long options may be abbreviated as getopt_long(3) allows, and both --option=value and --option value work. Options that systemd-nspawn has and netspawn does not implement yet are recognised and refused with "not supported yet", never silently ignored. netspawn must run as root.`),
			para("Without a terminal, netspawn passes standard input, output and error straight through (systemd-nspawn's `autopipe`); `--console=read-only` gives systemd-nspawn's default. SIGTERM and SIGINT sent to netspawn are forwarded to the container's PID 1, and a payload killed by signal N makes netspawn exit with 128+N."),
		}},
		optionSections(netspawnOptions()),
		{Title: "Environment", Blocks: []mandoc.Block{
			item([]mandoc.Span{mandoc.B("NETSPAWN_IMAGES_DIR")}, "Where -M NAME alone finds its tree (default: /var/lib/machines, then /usr/local/lib/machines, /usr/lib/machines and /var/lib/container)."),
			item([]mandoc.Span{mandoc.B("NETSPAWN_RUNTIME_DIR")}, "netspawnd's runtime directory and socket (default /run/netspawn)."),
			item([]mandoc.Span{mandoc.B("NETSPAWN_STATE_DIR")}, "Persistent state: properties, user namespace ranges, DHCP leases (default /var/lib/netspawn)."),
			item([]mandoc.Span{mandoc.B("NETSPAWN_SETTINGS_PATH")}, "Trusted directories for .nspawn files, colon separated (default /etc/systemd/nspawn:/run/systemd/nspawn)."),
			item([]mandoc.Span{mandoc.B("SYSTEMD_NSPAWN_*")}, "systemd-nspawn's own variables (SYSTEMD_NSPAWN_USE_CGNS, SYSTEMD_NSPAWN_API_VFS_WRITABLE, SYSTEMD_NSPAWN_TMPFS_TMP, SYSTEMD_NSPAWN_LOCK, SYSTEMD_NSPAWN_SHARE_*, SYSTEMD_SUPPRESS_SYNC) mean what they mean to systemd-nspawn; a value a variable does not take is an error naming it."),
		}},
		{Title: "Exit status", Blocks: []mandoc.Block{
			para("The payload's own exit status; 128+N when it was killed by signal N; 0 when a booted OS powered off; 1 when netspawn itself failed, with a one-line message on standard error that says why."),
		}},
		{Title: "Examples", Blocks: []mandoc.Block{
			example("Make a Debian tree and get a shell in it (as the Arch wiki does with debootstrap; pacstrap -c makes an Arch one):",
				"debootstrap --include=dbus-broker,systemd-container stable /var/lib/machines/debian https://deb.debian.org/debian",
				"netspawn -D /var/lib/machines/debian",
				"netspawn -M debian passwd"),
			example("Boot it, with a private network: ve-debian on the host, host0 inside, an address from netspawnd's pool by DHCP, NAT to the outside, and the host's port 8080 (localhost too) forwarded to its port 80:",
				"netspawn -b -M debian -n -p 8080:80",
				"netspawnctl list",
				"netspawnctl login debian",
				"netspawnctl poweroff debian"),
			example("Run one command with host directories bound in, as a user of the tree; its exit status is netspawn's:",
				"netspawn -q -D ~/MyContainer --bind-ro=/etc/ssl --bind=/srv/src:/src -u build make -C /src"),
			example("Run a graphical program on the host's X server:",
				"netspawn -D ~/MyContainer --bind-ro=/tmp/.X11-unix -E DISPLAY=:0 xterm"),
			example("An ephemeral snapshot of the tree, removed on exit, and containers in one zone that reach each other by name:",
				"netspawn -x -M debian",
				"netspawn -b -M web --network-zone=lab",
				"netspawn -b -M db --network-zone=lab"),
			example("A user namespace with a UID range picked for the tree, and a bridge to the LAN:",
				"netspawn -b -U -M debian --network-bridge=br0"),
			example("Settings kept in a file instead of on the command line (see netspawn.nspawn(5)):",
				"printf '[Network]\\nVirtualEthernet=yes\\nPort=tcp:2222:22\\n' > /etc/systemd/nspawn/debian.nspawn",
				"netspawn -b -M debian"),
			example("Run machines as services supervised by netspawnd, started whenever netspawnd starts:",
				"netspawnctl enable --now debian"),
		}},
		{Title: "Files", Blocks: []mandoc.Block{
			item([]mandoc.Span{mandoc.B("/var/lib/machines/")}, "Machine images: a directory tree (or btrfs subvolume) per machine; netspawnctl(1) lists, clones, imports and exports them."),
			item([]mandoc.Span{mandoc.B("/etc/systemd/nspawn/"), mandoc.I("MACHINE"), mandoc.B(".nspawn")}, "Trusted settings files; see netspawn.nspawn(5)."),
			item([]mandoc.Span{mandoc.B("/run/netspawn/netspawnd.sock")}, "netspawnd's API socket."),
			item([]mandoc.Span{mandoc.B("/var/lib/netspawn/")}, "Persistent state: address allocations, user namespace ranges, saved properties."),
		}},
		{Title: "See also", Blocks: []mandoc.Block{
			para("netspawnctl(1), netspawnd(8), netspawn.nspawn(5), systemd-nspawn(1), machinectl(1). The project's docs/netspawn.md explains each option and how netspawn differs from systemd-nspawn."),
		}},
	}
	return p
}

// nspawnPage is netspawn.nspawn(5), from the settings table.
func nspawnPage(m meta) *mandoc.Page {
	p := m.page("netspawn.nspawn", "5", "container settings files")
	p.Synopsis = [][]string{
		{"/etc/systemd/nspawn/MACHINE.nspawn"},
		{"/run/systemd/nspawn/MACHINE.nspawn"},
		{"/var/lib/machines/MACHINE.nspawn"},
	}
	p.Sections = []mandoc.Section{{Title: "Description", Blocks: []mandoc.Block{
		para("A MACHINE.nspawn file holds the settings of one machine in systemd's unit file syntax: sections [Exec], [Files] and [Network] of Key=value lines, # and ; start comments. netspawn reads the files systemd-nspawn reads, with the same meaning, when it starts the machine: netspawn -M MACHINE, or -D with a directory named MACHINE."),
		para("netspawn looks first in the trusted directories /etc/systemd/nspawn and /run/systemd/nspawn ($NETSPAWN_SETTINGS_PATH when set), then beside the image (/var/lib/machines/MACHINE.nspawn for /var/lib/machines/MACHINE), and uses the first file it finds. A file beside the image is untrusted: the keys marked privileged below are ignored there, with a warning, unless --settings=trusted. Options given on the command line win over the file, unless --settings=override; --settings=no reads no file."),
		para("Unlike systemd-nspawn, netspawn refuses a bad value or an unknown key with an error naming the file, the line and the problem, instead of warning and going on. Keys marked not supported yet are recognised and refused unless their value asks for systemd-nspawn's default."),
	}}}
	docs := config.SettingDocs()
	for _, sec := range config.SettingSections {
		s := mandoc.Section{Title: "[" + sec + "] section options"}
		for _, d := range docs {
			if d.Section != sec {
				continue
			}
			t := strings.TrimSpace(d.Help)
			if !strings.HasSuffix(t, ".") {
				t += "."
			}
			if d.Flag != "" {
				t += " Same as `--" + d.Flag + "` on the command line."
			}
			if d.Privileged {
				t += " Privileged: ignored in an untrusted file."
			}
			if !d.Supported {
				t += " Not supported yet."
			}
			s.Blocks = append(s.Blocks, item([]mandoc.Span{mandoc.B(d.Key + "=")}, t))
		}
		p.Sections = append(p.Sections, s)
	}
	p.Sections = append(p.Sections,
		mandoc.Section{Title: "Examples", Blocks: []mandoc.Block{
			example("Boot the machine web with a private network, its port 80 on the host's 8080, and a host directory bound in read-only (/etc/systemd/nspawn/web.nspawn):",
				"[Exec]", "Boot=yes", "", "[Files]", "BindReadOnly=/srv/www:/var/www", "", "[Network]", "VirtualEthernet=yes", "Port=tcp:8080:80"),
			example("Put machines in one zone, where they reach each other by name:",
				"[Network]", "Zone=lab"),
		}},
		mandoc.Section{Title: "See also", Blocks: []mandoc.Block{
			para("netspawn(1), netspawnctl(1), systemd.nspawn(5)."),
		}},
	)
	return p
}

// netspawndPage is netspawnd(8), from its FlagSet.
func netspawndPage(m meta) *mandoc.Page {
	p := m.page("netspawnd", "8", "netspawn's network controller")
	p.Synopsis = [][]string{{"netspawnd", "[OPTIONS...]"}}
	p.Sections = []mandoc.Section{
		{Title: "Description", Blocks: []mandoc.Block{
			para("netspawnd gives containers their networks: it keeps the machine registry, hands out subnets, creates the containers' links (veth pairs, bridges of zones, macvlan and ipvlan), keeps the NAT and port forward rules in its own nftables table inet netspawn, serves DHCP and router advertisements on the container links and DNS for machine names, and answers an API on a Unix socket. It does what networkd's container networks, systemd-nspawn's veth set-up and machined do together on a systemd host, on hosts with or without systemd."),
			para("Nobody has to start it: netspawn(1) and netspawnctl(1) start it on demand, detached and logging to netspawnd.log in the runtime directory, when its socket does not answer. netspawnd.service (systemd, Type=notify) and the OpenRC script run it as a service instead. It works in the network namespace it was started in; one netspawnd runs per namespace and runtime directory."),
			para("Options can also be set in the configuration file, one KEY=VALUE line per option named as its long option without the dashes (# and ; start comments); the command line wins."),
		}},
		optionSections(netspawndOptions()),
		{Title: "Signals", Blocks: []mandoc.Block{
			para("SIGTERM and SIGINT stop the daemon and leave every running container's links, addresses, NAT and forwards in place; the next netspawnd, started by hand or on demand, adopts them. A netspawnd killed with SIGKILL restores them from its state files the same way."),
		}},
		{Title: "Examples", Blocks: []mandoc.Block{
			example("Run it in the foreground with debug logs:", "netspawnd --log-level debug"),
			example("Containers get addresses from 10.20.0.0/16 only, IPv4 only:", "netspawnd --pools 10.20.0.0/16 --no-ipv6"),
			example("The same in /etc/netspawn/netspawnd.conf:", "pools=10.20.0.0/16", "no-ipv6=true"),
			example("Zones that span the hosts sharing an etcd:", "netspawnd --cluster-etcd https://etcd1:2379 --cluster-etcd-ca /etc/netspawn/etcd-ca.pem"),
		}},
		{Title: "Files", Blocks: []mandoc.Block{
			item([]mandoc.Span{mandoc.B("/etc/netspawn/netspawnd.conf")}, "The configuration file (optional)."),
			item([]mandoc.Span{mandoc.B("/run/netspawn/netspawnd.sock")}, "The API socket; netspawnd.log beside it is the log of an on-demand start; machines.d/ holds the running machines."),
			item([]mandoc.Span{mandoc.B("/run/netspawn/nss.sock")}, "Where the NSS module libnss_netspawn.so.2 asks for machine names (hosts: files netspawn dns in nsswitch.conf)."),
			item([]mandoc.Span{mandoc.B("/var/lib/netspawn/")}, "Persistent state: address allocations (ipam.d/), DHCP leases, the ULA prefix, supervised machines."),
		}},
		{Title: "See also", Blocks: []mandoc.Block{
			para("netspawn(1), netspawnctl(1), nft(8), nsswitch.conf(5). The project's docs/netspawnd.md describes what a registration does and the nftables table."),
		}},
	}
	return p
}

// netspawnctlPage is netspawnctl(1), from its command tree.
func netspawnctlPage(m meta) *mandoc.Page {
	root := ctlcmd.NewRoot(nil)
	root.InitDefaultCompletionCmd()
	p := m.page("netspawnctl", "1", "manage netspawn machines, images and networks")
	p.Synopsis = [][]string{{"netspawnctl", "[OPTIONS...]", "COMMAND", "[NAME...]"}}
	opts := mandoc.Section{Title: "Options"}
	for _, o := range pflagOptions(root.PersistentFlags()) {
		opts.Blocks = append(opts.Blocks, item(optionTag(&o), optionText(&o)))
	}
	opts.Blocks = append(opts.Blocks, item([]mandoc.Span{mandoc.B("-h"), mandoc.R(", "), mandoc.B("--help")}, "Show the help of netspawnctl or of a command."))
	cmds := mandoc.Section{Title: "Commands"}
	var walk func(prefix string, c *cobra.Command)
	walk = func(prefix string, c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" {
				continue
			}
			use := strings.TrimSpace(prefix + " " + s.Use)
			if s.Runnable() {
				cmds.Blocks = append(cmds.Blocks, item(useSpans(use), sentence(s.Short)))
				s.LocalFlags().VisitAll(func(f *pflag.Flag) {
					if f.Name == "help" {
						return
					}
					o := pflagOptions(flagSet(f))[0]
					cmds.Blocks = append(cmds.Blocks, mandoc.Block{Indent: true, Tag: optionTag(&o), Text: optionText(&o)})
				})
			}
			if s.Name() != "completion" {
				walk(strings.TrimSpace(prefix+" "+s.Name()), s)
			}
		}
	}
	walk("", root)
	p.Sections = []mandoc.Section{
		{Title: "Description", Blocks: []mandoc.Block{
			para("netspawnctl lists and manages the machines netspawn(1) runs, their networks and leases, and the machine images, as machinectl(1) does for systemd-nspawn. It talks to netspawnd(8) over its socket ($NETSPAWN_RUNTIME_DIR/netspawnd.sock, default /run/netspawn) and starts netspawnd on demand unless --no-start. Images are looked up in $NETSPAWN_IMAGES_DIR, or /var/lib/machines and machinectl's other directories. It needs root."),
		}},
		opts,
		cmds,
		{Title: "Shell completion", Blocks: []mandoc.Block{
			para("The completion scripts that make install puts in place complete the commands, the names of running machines (asked from a running netspawnd, which completion never starts) and the names of images. netspawnctl completion bash|zsh|fish prints the script for a shell."),
		}},
		{Title: "Examples", Blocks: []mandoc.Block{
			example("The machines, a shell in one, then power it off:",
				"netspawnctl list", "netspawnctl shell web", "netspawnctl shell root@web /bin/ls /etc", "netspawnctl poweroff web"),
			example("Get an image, boot it as a service that starts with netspawnd, read its console:",
				"netspawnctl pull-tar https://example.org/images/debian.tar.xz debian", "netspawnctl enable --now debian", "netspawnctl logs debian"),
			example("Limits on a running machine, kept for its next start:",
				"netspawnctl set-property web MemoryMax=2G"),
			example("Check the host:", "netspawnctl doctor"),
		}},
		{Title: "Exit status", Blocks: []mandoc.Block{
			para("0 on success; shell returns the command's status; otherwise 1, with a one-line message on standard error."),
		}},
		{Title: "See also", Blocks: []mandoc.Block{
			para("netspawn(1), netspawnd(8), netspawn.nspawn(5), machinectl(1). The project's docs/netspawnctl.md and docs/images.md say more of each command."),
		}},
	}
	return p
}

// useSpans sets "clone NAME NEWNAME": verbs bold, placeholders italic.
func useSpans(use string) []mandoc.Span {
	var out []mandoc.Span
	for i, w := range strings.Fields(use) {
		if i > 0 {
			out = append(out, mandoc.R(" "))
		}
		core := strings.Trim(w, "[].")
		switch {
		case core == "" || strings.ToUpper(core) != core || strings.HasPrefix(core, "-"):
			out = append(out, mandoc.B(w))
		default:
			out = append(out, mandoc.I(w))
		}
	}
	return out
}

// flagSet wraps one flag for pflagOptions.
func flagSet(f *pflag.Flag) *pflag.FlagSet {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.AddFlag(f)
	return fs
}

// sentence ends s with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// mentionsAll tells whether help names every value already.
func mentionsAll(help string, values []string) bool {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(help, func(r rune) bool { return r == ' ' || r == ',' || r == '(' || r == ')' || r == ':' }) {
		words[w] = true
	}
	for _, v := range values {
		if !words[v] {
			return false
		}
	}
	return true
}
