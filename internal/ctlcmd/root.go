// Package ctlcmd is netspawnctl's command tree: its verbs, their flags and
// help, and what each does. cmd/netspawnctl runs it; internal/mangen makes
// the man page and the shell completions from the same tree, so they cannot
// drift apart. See docs/netspawnctl.md.
package ctlcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/spf13/cobra"
)

type options struct {
	runtimeDir string
	output     string
	noStart    bool
}

// NewRoot returns netspawnctl's root command, writing to out.
func NewRoot(out io.Writer) *cobra.Command {
	root := newRoot(out)
	addCompletions(root)
	return root
}

func newRoot(out io.Writer) *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "netspawnctl",
		Short:         "Manage netspawn machines and their networks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	pf := root.PersistentFlags()
	pf.StringVar(&o.runtimeDir, "runtime-dir", "", "netspawnd's runtime directory (default $NETSPAWN_RUNTIME_DIR or /run/netspawn)")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	pf.BoolVar(&o.noStart, "no-start", false, "do not start netspawnd when it is not running")

	addMachineCommands(root, o)
	addLeasesCommand(root, o, out)
	addImageCommands(root, o)
	addDoctorCommand(root, o)
	addNSSCommand(root)
	var local bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List running machines (with cluster zones: those of every host, and the host)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				ms, err := c.List(ctx)
				if err != nil {
					return err
				}
				if local {
					ms = localMachines(ms)
				}
				if o.output == "json" {
					return writeJSON(out, ms)
				}
				return printList(out, ms)
			})
		},
	}
	list.Flags().BoolVar(&local, "local", false, "only this host's machines (with cluster zones)")
	root.AddCommand(list)
	addZoneCommands(root, o, out)
	root.AddCommand(&cobra.Command{
		Use:   "status NAME",
		Short: "Show a machine: leader, root, links, addresses, forwards",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(cmd.Context(), o, args[0], func(st api.MachineStatus) error {
				if o.output == "json" {
					return writeJSON(out, st)
				}
				printStatus(out, st)
				printUsage(out, st)
				return nil
			})
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "networks",
		Short: "List container subnets, their links and gateways",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				ns, err := c.Networks(ctx)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return writeJSON(out, ns)
				}
				return printNetworks(out, ns)
			})
		},
	})
	return root
}

func withClient(ctx context.Context, o *options, f func(context.Context, *api.Client) error) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", o.output)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: o.runtimeDir, NoStart: o.noStart})
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// localMachines keeps the machines of this host: those with a leader here.
func localMachines(ms []api.Machine) []api.Machine {
	out := ms[:0:0]
	for _, m := range ms {
		if m.Leader != 0 || m.Starting {
			out = append(out, m)
		}
	}
	return out
}

func printList(w io.Writer, ms []api.Machine) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	cluster := false
	for _, m := range ms {
		cluster = cluster || m.Host != ""
	}
	if cluster {
		fmt.Fprintln(tw, "MACHINE\tHOST\tCLASS\tSERVICE\tOS\tADDRESSES")
	} else {
		fmt.Fprintln(tw, "MACHINE\tCLASS\tSERVICE\tOS\tADDRESSES")
	}
	for _, m := range ms {
		if cluster {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, dash(m.Host), dash(m.Class), dash(m.Service), dash(m.OS), dash(strings.Join(m.Addresses, " ")))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, dash(m.Class), dash(m.Service), dash(m.OS), dash(strings.Join(m.Addresses, " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d machines listed.\n", len(ms))
	return nil
}

func printStatus(w io.Writer, st api.MachineStatus) {
	fmt.Fprintf(w, "%s\n", st.Name)
	fmt.Fprintf(w, "      Since: %s\n", dash(st.Since))
	fmt.Fprintf(w, "     Leader: %d\n", st.Leader)
	fmt.Fprintf(w, "      Class: %s\n", dash(st.Class))
	fmt.Fprintf(w, "    Service: %s\n", dash(st.Service))
	fmt.Fprintf(w, "       Root: %s\n", dash(st.Root))
	if st.OS != "" {
		fmt.Fprintf(w, "         OS: %s\n", st.OS)
	}
	fmt.Fprintf(w, "      NetNS: %s\n", st.NetNS)
	for i, l := range st.Links {
		label := "      Links:"
		if i > 0 {
			label = "            "
		}
		state := "down"
		if l.Up {
			state = "up"
		}
		name := l.Host
		if l.AltName != "" {
			name += " (" + l.AltName + ")"
		}
		fmt.Fprintf(w, "%s %s <-> %s [%s, %s, ifindex %d]\n", label, name, l.Container, l.Kind, state, l.Index)
		if l.Subnet != "" {
			fmt.Fprintf(w, "             subnet %s gateway %s address %s mac %s\n", l.Subnet, l.Gateway, l.Address, l.MAC)
		}
	}
	if len(st.Addresses) > 0 {
		fmt.Fprintf(w, "    Address: %s\n", strings.Join(st.Addresses, " "))
	}
	for i, p := range st.Ports {
		label := "   Forwards:"
		if i > 0 {
			label = "            "
		}
		fmt.Fprintf(w, "%s %s %d -> %d\n", label, p.Protocol, p.HostPort, p.ContainerPort)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "    Warning: %s\n", warn)
	}
}

func printNetworks(w io.Writer, ns []api.Network) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tSUBNET\tGATEWAY\tADDRESS\tMACHINE\tSTATE")
	for _, n := range ns {
		state := "reserved"
		if n.Active {
			state = "active"
		}
		if n.VNI != 0 {
			// A cluster zone: its VNI and hosts where a machine would be.
			state = fmt.Sprintf("cluster vni %d, hosts %s", n.VNI, dash(strings.Join(n.Hosts, ",")))
			if n.Active {
				state = "active, " + state
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Link, n.Subnet, n.Gateway, dash(n.Address), dash(n.Machine), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d networks listed.\n", len(ns))
	return nil
}

// addZoneCommands adds "zone create" and "release".
func addZoneCommands(root *cobra.Command, o *options, out io.Writer) {
	zone := &cobra.Command{Use: "zone", Short: "Manage cluster zones (netspawnd --cluster-etcd)"}
	var subnet string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster zone before its first member, with its subnet",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				n, err := c.CreateZone(ctx, args[0], subnet)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return writeJSON(out, n)
				}
				return printNetworks(out, []api.Network{n})
			})
		},
	}
	create.Flags().StringVar(&subnet, "subnet", "", "the zone's IPv4 subnet (a /16 or /24; default: a /16 from netspawnd's --cluster-pools)")
	zone.AddCommand(create)
	root.AddCommand(zone)
	root.AddCommand(&cobra.Command{
		Use:   "release NAME",
		Short: "Give a stopped machine's addresses back: its link subnet and zone addresses (in the cluster too); remove does it for removed images",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				return c.Release(ctx, args[0])
			})
		},
	})
}
