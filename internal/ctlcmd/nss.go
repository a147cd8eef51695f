package ctlcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/netspawn/netspawn/internal/atomicfile"
	"github.com/netspawn/netspawn/nss/nsswitch"
	"github.com/spf13/cobra"
)

// addNSSCommand adds `netspawnctl nss enable|disable|status`: netspawn on
// the hosts line of nsswitch.conf (what the Debian package's postinst runs
// with NETSPAWN_NSS=1, and what a user runs any time later).
func addNSSCommand(root *cobra.Command) {
	var path string
	nss := &cobra.Command{
		Use:   "nss",
		Short: "Add netspawn's NSS module to the hosts line of nsswitch.conf, or take it off",
	}
	nss.PersistentFlags().StringVar(&path, "nsswitch", envOr("NETSPAWN_NSSWITCH", "/etc/nsswitch.conf"), "nsswitch.conf to change ($NETSPAWN_NSSWITCH)")
	edit := func(enable bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			real, data, mode, err := readConf(path)
			if err != nil {
				return err
			}
			var out string
			var changed bool
			if enable {
				out, changed, err = nsswitch.Enable(data)
				if errors.Is(err, nsswitch.ErrNoHostsLine) {
					return fmt.Errorf("%s has no hosts: line to add netspawn to: add one such as \"hosts: files netspawn dns\"", real)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", real, err)
				}
			} else {
				out, changed = nsswitch.Disable(data)
			}
			if !changed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: unchanged (netspawn %s)\n", real, map[bool]string{true: "already on the hosts line", false: "not on the hosts line"}[enable])
				return nil
			}
			if err := atomicfile.WriteFile(real, []byte(out), mode); err != nil {
				return fmt.Errorf("writing %s: %w", real, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (running programs read it again when restarted)\n", real, map[bool]string{true: "netspawn added to the hosts line", false: "netspawn taken off the hosts line"}[enable])
			return nil
		}
	}
	nss.AddCommand(&cobra.Command{
		Use:   "enable",
		Short: "Put netspawn on the hosts line (before resolve and dns): machine names resolve on the host",
		Args:  cobra.NoArgs,
		RunE:  edit(true),
	}, &cobra.Command{
		Use:   "disable",
		Short: "Take netspawn off the hosts line",
		Args:  cobra.NoArgs,
		RunE:  edit(false),
	}, &cobra.Command{
		Use:   "status",
		Short: "Say whether netspawn is on the hosts line (exit status 0) or not (1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			real, data, _, err := readConf(path)
			if err != nil {
				return err
			}
			if !nsswitch.Enabled(data) {
				return fmt.Errorf("%s: netspawn is not on the hosts line (netspawnctl nss enable adds it)", real)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: netspawn is on the hosts line\n", real)
			return nil
		},
	})
	root.AddCommand(nss)
}

// readConf reads nsswitch.conf through a symbolic link (the file it names
// is the one to replace) and returns that file's path, text and mode.
func readConf(path string) (string, string, fs.FileMode, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", "", 0, fmt.Errorf("reading %s: %w", real, err)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return "", "", 0, fmt.Errorf("reading %s: %w", real, err)
	}
	return real, string(b), st.Mode().Perm(), nil
}
