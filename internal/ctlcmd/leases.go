package ctlcmd

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/netspawn/netspawn/netctl/api"
)

func addLeasesCommand(root *cobra.Command, o *options, out io.Writer) {
	root.AddCommand(&cobra.Command{
		Use:   "leases [LINK]",
		Short: "List the DHCP leases netspawnd holds (on one link, or all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			link := ""
			if len(args) == 1 {
				link = args[0]
			}
			return withClient(cmd.Context(), o, func(ctx context.Context, c *api.Client) error {
				ls, err := c.Leases(ctx, link)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return writeJSON(out, ls)
				}
				tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "LINK\tADDRESS\tMAC\tCLIENT-ID\tHOSTNAME\tSTATE\tEXPIRES")
				for _, l := range ls {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Link, l.Address, dash(l.MAC), dash(l.ClientID), dash(l.Hostname), l.State, dash(l.Expiry))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(out, "\n%d leases listed.\n", len(ls))
				return nil
			})
		},
	})
}
