package ctlcmd

import (
	"fmt"
	"os"
	"strings"

	"github.com/netspawn/netspawn/doctor"
	"github.com/netspawn/netspawn/spawn/config"
	"github.com/spf13/cobra"
)

func addDoctorCommand(root *cobra.Command, o *options) {
	p := doctor.DefaultPaths()
	var dirs string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the host for what container networking needs (reads only, changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "table" && o.output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", o.output)
			}
			p.RuntimeDir = o.runtimeDir
			if p.RuntimeDir == "" {
				p.RuntimeDir = config.RuntimeDir()
			}
			p.NSSDirs = strings.FieldsFunc(dirs, func(r rune) bool { return r == ':' || r == ',' })
			checks := doctor.Run(cmd.Context(), p)
			out := cmd.OutOrStdout()
			if o.output == "json" {
				if err := writeJSON(out, checks); err != nil {
					return err
				}
			} else {
				doctor.Print(out, checks)
			}
			for _, c := range checks {
				if c.Status == "FAIL" {
					return fmt.Errorf("%s: %s", c.Name, c.Detail)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.NSSwitch, "nsswitch", envOr("NETSPAWN_NSSWITCH", "/etc/nsswitch.conf"), "nsswitch.conf to check ($NETSPAWN_NSSWITCH)")
	f.StringVar(&dirs, "nss-dirs", envOr("NETSPAWN_NSS_DIRS", strings.Join(doctor.DefaultNSSDirs(), ":")), "directories where glibc looks for NSS modules ($NETSPAWN_NSS_DIRS)")
	f.StringVar(&p.Proc, "proc", "/proc", "procfs mount")
	f.StringVar(&p.Sys, "sys", "/sys", "sysfs mount")
	root.AddCommand(cmd)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
