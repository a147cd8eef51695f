package ctlcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/machine"

	"github.com/spf13/cobra"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/supervisor"
)

// addMachineCommands adds the verbs that act on a running machine's
// processes: shell, login, poweroff, reboot, terminate, kill.
func addMachineCommands(root *cobra.Command, o *options) {
	var shellEnv []string
	var shellUID string
	shell := &cobra.Command{
		Use:   "shell [[USER@]NAME [COMMAND [ARGS...]]]",
		Short: "Open a shell (or run a command) in a running machine; exits with the command's status",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user, name := shellUID, args[0]
			if u, n, ok := strings.Cut(name, "@"); ok {
				user, name = u, n
			}
			code, err := enterMachine(cmd.Context(), o, name, machine.EnterOptions{User: user, Command: args[1:], Env: shellEnv})
			if err != nil {
				return err
			}
			os.Exit(code)
			return nil
		},
	}
	shell.Flags().SetInterspersed(false)
	shell.Flags().StringArrayVarP(&shellEnv, "setenv", "E", nil, "set an environment variable (NAME=VALUE) for the command")
	shell.Flags().StringVar(&shellUID, "uid", "", "user to run as (name or UID; USER@NAME also works)")
	root.AddCommand(shell)

	root.AddCommand(&cobra.Command{
		Use:   "login NAME",
		Short: "Log in to a running machine on a new terminal (its /bin/login)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := enterMachine(cmd.Context(), o, args[0], machine.EnterOptions{Command: []string{"/bin/login"}})
			if err != nil {
				return err
			}
			os.Exit(code)
			return nil
		},
	})

	signalVerb := func(use, short string, pick func(leader int) syscall.Signal) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME...",
			Short: short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return forMachines(cmd.Context(), o, args, func(m api.MachineStatus) error {
					sig := pick(m.Leader)
					if err := syscall.Kill(m.Leader, sig); err != nil {
						return fmt.Errorf("%s: signalling leader %d: %w", m.Name, m.Leader, err)
					}
					return nil
				})
			},
		}
	}
	root.AddCommand(signalVerb("poweroff", "Ask machines to power off (SIGRTMIN+4 to a booted init; SIGTERM, else SIGKILL, to a command)",
		func(leader int) syscall.Signal {
			return machine.PoliteSignal(leader, config.SigRTMin+4)
		}))
	root.AddCommand(signalVerb("reboot", "Ask machines to reboot (SIGINT to the leader, as machinectl)",
		func(int) syscall.Signal { return syscall.SIGINT }))
	root.AddCommand(signalVerb("terminate", "Terminate machines at once (SIGKILL to the leader, which ends every process in it)",
		func(int) syscall.Signal { return syscall.SIGKILL }))

	root.AddCommand(&cobra.Command{
		Use:   "start NAME...",
		Short: "Boot images from the images directory as background services supervised by netspawnd (console log: netspawnctl logs)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachName(cmd.Context(), o, args, func(ctx context.Context, c *api.Client, n string) error { return c.Start(ctx, n) })
		},
	})
	root.AddCommand(nowVerb(o, "enable NAME...", "Start machines whenever netspawnd starts (at boot, with its service); --now starts them too",
		"start them now too", (*api.Client).Enable, (*api.Client).Start))
	root.AddCommand(nowVerb(o, "disable NAME...", "Stop starting machines with netspawnd; --now powers them off too",
		"power them off too", (*api.Client).Disable, func(c *api.Client, ctx context.Context, n string) error {
			st, err := leaderStatus(ctx, c, n)
			if err != nil {
				return nil // not running
			}
			if err := hasLeader(st); err != nil {
				return err
			}
			return syscall.Kill(st.Leader, machine.PoliteSignal(st.Leader, config.SigRTMin+4))
		}))
	var logLines int
	logs := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show the console log of a machine started with netspawnctl start",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := supervisor.LogPath(config.StateDir(), args[0])
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("no console log for %q (%v): only machines started with netspawnctl start have one", args[0], err)
			}
			lines := strings.SplitAfter(string(b), "\n")
			if logLines > 0 && len(lines) > logLines+1 {
				lines = lines[len(lines)-logLines-1:]
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), strings.Join(lines, ""))
			return err
		},
	}
	logs.Flags().IntVarP(&logLines, "lines", "n", 0, "show only the last N lines")
	root.AddCommand(logs)

	journal := &cobra.Command{
		Use:   "journal NAME [JOURNALCTL-OPTIONS...]",
		Short: "Show a machine's journal with journalctl (as journalctl -M NAME); options after NAME go to journalctl",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJournal(cmd.Context(), o, args[0], args[1:])
		},
	}
	journal.Flags().SetInterspersed(false)
	root.AddCommand(journal)

	var copyForce bool
	copyVerb := func(use, short string, f func(leader int, src, dst string, force bool) error) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " NAME SRC [DST]",
			Short: short,
			Args:  cobra.RangeArgs(2, 3),
			RunE: func(cmd *cobra.Command, args []string) error {
				dst := ""
				if len(args) == 3 {
					dst = args[2]
				}
				return forMachines(cmd.Context(), o, args[:1], func(m api.MachineStatus) error {
					return f(m.Leader, args[1], dst, copyForce)
				})
			},
		}
		c.Flags().BoolVar(&copyForce, "force", false, "replace files that exist")
		return c
	}
	root.AddCommand(copyVerb("copy-to", "Copy a file or directory from the host into a running machine (owners, modes and times kept)", machine.CopyTo))
	root.AddCommand(copyVerb("copy-from", "Copy a file or directory out of a running machine to the host", machine.CopyFrom))
	var bindRO, bindMkdir bool
	bind := &cobra.Command{
		Use:   "bind NAME SRC [DST]",
		Short: "Bind mount a host directory or file into a running machine",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := ""
			if len(args) == 3 {
				dst = args[2]
			}
			return forMachines(cmd.Context(), o, args[:1], func(m api.MachineStatus) error {
				return machine.Bind(m.Leader, args[1], dst, bindRO, bindMkdir)
			})
		},
	}
	bind.Flags().BoolVar(&bindRO, "read-only", false, "mount it read-only")
	bind.Flags().BoolVar(&bindMkdir, "mkdir", false, "create the destination if it is missing")
	root.AddCommand(bind)

	var showProps []string
	var showValue bool
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a machine's properties as KEY=VALUE lines (--property=P to pick, --value for bare values)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(cmd.Context(), o, args[0], func(st api.MachineStatus) error {
				props := machineProperties(st)
				keys := showProps
				if len(keys) == 0 {
					for _, kv := range props {
						keys = append(keys, kv[0])
					}
				}
				for _, k := range keys {
					v, ok := lookupProp(props, k)
					if !ok {
						return fmt.Errorf("unknown property %q", k)
					}
					if showValue {
						fmt.Fprintln(cmd.OutOrStdout(), v)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "%s=%s\n", k, v)
					}
				}
				return nil
			})
		},
	}
	show.Flags().StringSliceVarP(&showProps, "property", "p", nil, "show only these properties")
	show.Flags().BoolVar(&showValue, "value", false, "print only the values")
	root.AddCommand(show)

	var runtimeOnly bool
	setProp := &cobra.Command{
		Use:   "set-property NAME ASSIGNMENT...",
		Short: "Set resource limits (MemoryMax=, MemoryHigh=, CPUQuota=, CPUWeight=, TasksMax=) on a machine; kept for its next start unless --runtime",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, props := args[0], args[1:]
			if _, err := config.ParseProperties(props); err != nil {
				return err
			}
			var applyErr error
			running := true
			err := withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				st, err := leaderStatus(ctx, c, name)
				if err != nil {
					running = false
					return nil
				}
				if applyErr = hasLeader(st); applyErr == nil {
					applyErr = machine.SetMachineLimits(name, st.Leader, props)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !runtimeOnly {
				if err := config.SaveProperties(config.StateDir(), name, props); err != nil {
					return fmt.Errorf("saving properties of %s: %w", name, err)
				}
			} else if !running {
				return fmt.Errorf("machine %q is not running and --runtime settings are not kept", name)
			}
			return applyErr
		},
	}
	setProp.Flags().BoolVar(&runtimeOnly, "runtime", false, "apply to the running machine only; do not keep for its next start")
	root.AddCommand(setProp)

	var killSignal, killWhom string
	kill := &cobra.Command{
		Use:   "kill NAME...",
		Short: "Send a signal to a machine's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := config.ParseSignal(killSignal)
			if err != nil {
				return err
			}
			if killWhom != "all" && killWhom != "leader" {
				return fmt.Errorf("--kill-whom must be leader or all, not %q", killWhom)
			}
			return forMachines(cmd.Context(), o, args, func(m api.MachineStatus) error {
				pids := []int{m.Leader}
				if killWhom == "all" {
					pids = machine.MachinePIDs(m.Leader)
				}
				for _, pid := range pids {
					if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
						return fmt.Errorf("%s: signalling %d: %w", m.Name, pid, err)
					}
				}
				return nil
			})
		},
	}
	kill.Flags().StringVarP(&killSignal, "signal", "s", "SIGTERM", "signal to send")
	kill.Flags().StringVar(&killWhom, "kill-whom", "all", "leader or all")
	root.AddCommand(kill)
}

// runJournal runs journalctl on a machine's journal: the running
// machine's, or, when it is not running, its image's (and the host's copy
// that --link-journal=host keeps).
func runJournal(ctx context.Context, o *options, name string, jargs []string) error {
	if err := config.CheckMachineName(name); err != nil {
		return err
	}
	jctl, err := machine.Journalctl()
	if err != nil {
		return err
	}
	src := machine.JournalSource{HostDir: config.HostJournalDir()}
	statusErr := withClient(ctx, o, func(ctx context.Context, c *api.Client) error {
		st, err := c.Status(ctx, name)
		src.Leader = st.Leader
		return err
	})
	if src.Leader == 0 {
		dir, err := config.FindMachineDirectory(name, config.ImageDirs(nil))
		if err != nil {
			if statusErr != nil {
				return fmt.Errorf("%s is not running (%v) and has no image: %w", name, statusErr, err)
			}
			return fmt.Errorf("%s has no process of netspawn's (a network attachment of a container runtime) and no image: %w", name, err)
		}
		src.ImageDir = dir
	}
	sel, err := machine.JournalArgs(src)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	argv := append([]string{jctl}, sel...)
	argv = append(argv, jargs...)
	return syscall.Exec(jctl, argv, os.Environ())
}

// eachName runs f for each name on one connection, collecting errors.
func eachName(ctx context.Context, o *options, names []string, f func(context.Context, *api.Client, string) error) error {
	return withClient(ctx, o, func(ctx context.Context, c *api.Client) error {
		var errs []string
		for _, n := range names {
			if err := f(ctx, c, n); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
}

// nowVerb is a command that does act to each machine named and, with
// --now, then now.
func nowVerb(o *options, use, short, nowUsage string, act, now func(*api.Client, context.Context, string) error) *cobra.Command {
	var withNow bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachName(cmd.Context(), o, args, func(ctx context.Context, c *api.Client, n string) error {
				if err := act(c, ctx, n); err != nil {
					return err
				}
				if withNow {
					return now(c, ctx, n)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&withNow, "now", false, nowUsage)
	return cmd
}

// withStatus looks up one machine and applies f.
func withStatus(ctx context.Context, o *options, name string, f func(api.MachineStatus) error) error {
	return withClient(ctx, o, func(ctx context.Context, c *api.Client) error {
		st, err := c.Status(ctx, name)
		if err != nil {
			return err
		}
		return f(st)
	})
}

// forMachines looks up each machine and applies f, collecting errors.
func forMachines(ctx context.Context, o *options, names []string, f func(api.MachineStatus) error) error {
	return eachName(ctx, o, names, func(ctx context.Context, c *api.Client, n string) error {
		st, err := leaderStatus(ctx, c, n)
		if err != nil {
			return err
		}
		if err := hasLeader(st); err != nil {
			return err
		}
		return f(st)
	})
}

// leaderStatus is a machine's status once it has a leader: a machine
// still starting (netspawn has attached its network, its first process is
// about to run) is waited for, a few seconds at most.
func leaderStatus(ctx context.Context, c *api.Client, name string) (api.MachineStatus, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Status(ctx, name)
		if err != nil || !st.Starting || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hasLeader refuses a machine without a leader process (a CNI runtime's
// attachment): there is nothing to signal or enter, and signalling PID 0
// would reach netspawnctl's own process group.
func hasLeader(st api.MachineStatus) error {
	if st.Leader > 0 {
		return nil
	}
	if st.Starting {
		return fmt.Errorf("%s is still starting: its first process does not run yet; try again in a moment", st.Name)
	}
	return fmt.Errorf("%s has no process of netspawn's to signal or enter: it is a network attachment (network namespace %s) that its container runtime owns; use the runtime's own commands", st.Name, st.NetNS)
}

func enterMachine(ctx context.Context, o *options, name string, eo machine.EnterOptions) (int, error) {
	var leader int
	err := withClient(ctx, o, func(ctx context.Context, c *api.Client) error {
		st, err := leaderStatus(ctx, c, name)
		if err != nil {
			return err
		}
		leader = st.Leader
		return hasLeader(st)
	})
	if err != nil {
		return 0, err
	}
	eo.Leader = leader
	return machine.Enter(eo)
}

// printUsage adds what the machine's cgroups say: memory, CPU, processes.
func printUsage(w io.Writer, st api.MachineStatus) {
	u := machine.ReadUsage(st.Leader)
	if u.MemoryBytes > 0 {
		fmt.Fprintf(w, "%12s %.1fM\n", "Memory:", float64(u.MemoryBytes)/(1<<20))
	}
	if u.CPUNanos > 0 {
		fmt.Fprintf(w, "%12s %s\n", "CPU:", time.Duration(u.CPUNanos).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%12s %d\n", "Tasks:", len(u.Processes))
	for _, l := range machine.ProcessTree(u.Processes) {
		fmt.Fprintf(w, "%12s %s\n", "", l)
	}
}

// machineProperties are machinectl show's properties, for a netspawn machine.
func machineProperties(st api.MachineStatus) [][2]string {
	var ifaces []string
	for _, l := range st.Links {
		ifaces = append(ifaces, l.Host)
	}
	u := machine.ReadUsage(st.Leader)
	return [][2]string{
		{"Name", st.Name}, {"Class", st.Class}, {"Service", st.Service},
		{"Leader", strconv.Itoa(st.Leader)}, {"RootDirectory", st.Root}, {"OS", st.OS},
		{"State", "running"}, {"Timestamp", st.Since},
		{"NetworkInterfaces", strings.Join(ifaces, " ")}, {"Addresses", strings.Join(st.Addresses, " ")},
		{"MemoryCurrent", strconv.FormatUint(u.MemoryBytes, 10)}, {"CPUUsageNSec", strconv.FormatUint(u.CPUNanos, 10)},
		{"TasksCurrent", strconv.Itoa(len(u.Processes))},
	}
}

func lookupProp(props [][2]string, k string) (string, bool) {
	for _, kv := range props {
		if kv[0] == k {
			return kv[1], true
		}
	}
	return "", false
}
