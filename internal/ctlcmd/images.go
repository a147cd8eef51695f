package ctlcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/netspawn/netspawn/images"
	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/spawn/config"
)

// addImageCommands adds machinectl's image verbs: list-images,
// image-status, show-image, clone, rename, read-only, remove, import-fs,
// import-tar, export-tar, pull-tar. See docs/images.md.
func addImageCommands(root *cobra.Command, o *options) {
	store := func() *images.Store {
		s := images.NewStore()
		s.Busy = func(ctx context.Context, img *images.Image) (string, error) { return runningMachineOf(ctx, o, img) }
		s.Progress = func(label string, total int64) *images.Progress {
			return images.NewProgress(os.Stderr, label, total)
		}
		return s
	}

	var all bool
	list := &cobra.Command{
		Use:   "list-images",
		Short: "List machine images (hidden ones with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := imgCheckOutput(o); err != nil {
				return err
			}
			imgs, err := store().List(all)
			if err != nil {
				return err
			}
			for i := range imgs {
				imgs[i].Measure()
			}
			if imgs == nil {
				imgs = []images.Image{}
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), imgs)
			}
			return printImages(cmd.OutOrStdout(), imgs)
		},
	}
	list.Flags().BoolVarP(&all, "all", "a", false, "also list hidden images (names beginning with a dot)")
	root.AddCommand(list)

	root.AddCommand(&cobra.Command{
		Use:   "image-status NAME...",
		Short: "Show images: path, type, read-only, OS, disk usage, times, settings file",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := imgCheckOutput(o); err != nil {
				return err
			}
			s := store()
			var out []images.Image
			for _, n := range args {
				img, err := s.Get(n)
				if err != nil {
					return err
				}
				img.Measure()
				out = append(out, *img)
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			for i := range out {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				printImageStatus(cmd.OutOrStdout(), &out[i])
			}
			return nil
		},
	})

	var props []string
	var value bool
	show := &cobra.Command{
		Use:   "show-image NAME...",
		Short: "Show image properties as KEY=VALUE lines",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := store()
			for i, n := range args {
				img, err := s.Get(n)
				if err != nil {
					return err
				}
				img.Measure()
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				printImageProps(cmd.OutOrStdout(), img, props, value)
			}
			return nil
		},
	}
	show.Flags().StringSliceVarP(&props, "property", "p", nil, "show only these properties")
	show.Flags().BoolVar(&value, "value", false, "print values only, without KEY=")
	root.AddCommand(show)

	var cloneRO bool
	clone := &cobra.Command{
		Use:   "clone NAME NEWNAME",
		Short: "Copy an image (btrfs snapshot, else reflink copy, else a full copy)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd)
			defer stop()
			_, err := store().Clone(ctx, args[0], args[1], cloneRO)
			return err
		},
	}
	clone.Flags().BoolVar(&cloneRO, "read-only", false, "make the clone read-only")
	root.AddCommand(clone)

	root.AddCommand(&cobra.Command{
		Use:   "rename NAME NEWNAME",
		Short: "Rename an image and its .nspawn file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return store().Rename(cmd.Context(), args[0], args[1])
		},
	})

	root.AddCommand(&cobra.Command{
		Use:   "read-only NAME [BOOL]",
		Short: "Mark an image read-only (default) or writable",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ro := true
			if len(args) == 2 {
				b, err := config.ParseBool(args[1])
				if err != nil {
					return err
				}
				ro = b
			}
			return store().SetReadOnly(args[0], ro)
		},
	})

	root.AddCommand(&cobra.Command{
		Use:   "remove NAME...",
		Short: "Remove images and their .nspawn files",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := store()
			var errs []error
			for _, n := range args {
				if err := s.Remove(cmd.Context(), n); err != nil {
					errs = append(errs, err)
					continue
				}
				// A removed machine's zone addresses go back (in the
				// cluster too), when netspawnd runs; nothing to do else.
				ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				if c, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: o.runtimeDir, NoStart: true}); err == nil {
					if err := c.Release(ctx, n); err != nil {
						errs = append(errs, fmt.Errorf("%s removed, but its addresses stay reserved: %w", n, err))
					}
					c.Close()
				}
				cancel()
			}
			return errors.Join(errs...)
		},
	})

	var importRO bool
	importFS := &cobra.Command{
		Use:   "import-fs DIRECTORY [NAME]",
		Short: "Copy a directory tree in as a new image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := images.NameFromPath(args[0])
			if len(args) == 2 {
				name = args[1]
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			_, err := store().ImportFS(ctx, args[0], name, importRO)
			return err
		},
	}
	importFS.Flags().BoolVar(&importRO, "read-only", false, "make the new image read-only")
	root.AddCommand(importFS)

	var importTarRO bool
	importTar := &cobra.Command{
		Use:   "import-tar FILE [NAME]",
		Short: "Unpack a tar archive (plain, .gz, .xz, .zst; - for stdin) as a new image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 2 {
				name = args[1]
			} else if args[0] != "-" {
				name = images.NameFromPath(args[0])
			}
			if name == "" {
				return errors.New("import-tar: give a NAME when reading standard input")
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			_, err := store().ImportTar(ctx, args[0], name, importTarRO)
			return err
		},
	}
	importTar.Flags().BoolVar(&importTarRO, "read-only", false, "make the new image read-only")
	root.AddCommand(importTar)

	var format string
	exportTar := &cobra.Command{
		Use:   "export-tar NAME [FILE]",
		Short: "Write an image as a tar archive (compressed by FILE's extension: .gz, .xz, .zst); stdout without FILE",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 2 {
				file = args[1]
			}
			c := images.Compression(-1)
			if format != "" {
				var err error
				if c, err = images.ParseCompression(format); err != nil {
					return err
				}
			}
			if (file == "" || file == "-") && term.IsTerminal(int(os.Stdout.Fd())) {
				return errors.New("export-tar: refusing to write an archive to a terminal: give a FILE or redirect standard output")
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			return store().ExportTar(ctx, args[0], file, c)
		},
	}
	exportTar.Flags().StringVar(&format, "format", "", "compression: none, gzip, xz or zstd (default: by FILE's extension)")
	root.AddCommand(exportTar)

	var verify string
	var pullRO bool
	pull := &cobra.Command{
		Use:   "pull-tar URL [NAME]",
		Short: "Download a tar archive over http(s) and unpack it as a new image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			ctx, stop := interruptible(cmd)
			defer stop()
			_, err := store().Pull(ctx, args[0], name, images.PullOptions{Verify: verify, ReadOnly: pullRO, Log: cmd.ErrOrStderr()})
			return err
		},
	}
	pull.Flags().StringVar(&verify, "verify", images.VerifyAuto,
		"no, checksum (SHA256SUMS beside the URL must list the file) or auto (check when SHA256SUMS exists)")
	pull.Flags().BoolVar(&pullRO, "read-only", false, "make the new image read-only")
	root.AddCommand(pull)
}

// interruptible is the command's context, ended by SIGINT or SIGTERM: a
// long copy, import or download then stops and removes its temporary.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func imgCheckOutput(o *options) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", o.output)
	}
	return nil
}

// runningMachineOf names the running machine whose root is img, or "".
// netspawnd knows every registered machine; when it is not running, no
// registered machine is, and a machine cgroup named after the image with
// processes in it still counts (netspawn -M NAME without netspawnd).
func runningMachineOf(ctx context.Context, o *options, img *images.Image) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want := imgCanonical(img.Path)
	if c, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: o.runtimeDir, NoStart: true}); err == nil {
		defer c.Close()
		ms, err := c.List(ctx)
		if err != nil {
			return "", fmt.Errorf("asking netspawnd for running machines: %w", err)
		}
		for _, m := range ms {
			if m.Root != "" && imgCanonical(m.Root) == want {
				return m.Name, nil
			}
		}
	}
	if cgroup.Populated(img.Name) {
		return img.Name, nil
	}
	return "", nil
}

func imgCanonical(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

func imgTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("Mon 2006-01-02 15:04:05 MST")
}

func imgUsage(n int64) string {
	if n < 0 {
		return "-"
	}
	return images.FormatBytes(n)
}

func imgRO(ro bool) string {
	if ro {
		return "ro"
	}
	return "no"
}

func printImages(w io.Writer, imgs []images.Image) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tRO\tUSAGE\tCREATED\tMODIFIED")
	for _, img := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", img.Name, img.Type, imgRO(img.ReadOnly), imgUsage(img.Usage), imgTime(img.Created), imgTime(img.Modified))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d images listed.\n", len(imgs))
	return nil
}

func printImageStatus(w io.Writer, img *images.Image) {
	fmt.Fprintf(w, "%s\n", img.Name)
	fmt.Fprintf(w, "      Path: %s\n", img.Path)
	fmt.Fprintf(w, "      Type: %s\n", img.Type)
	ro := "writable"
	if img.ReadOnly {
		ro = "read-only"
	}
	fmt.Fprintf(w, "  Read-Only: %s\n", ro)
	fmt.Fprintf(w, "        OS: %s\n", dash(img.OS))
	fmt.Fprintf(w, "     Usage: %s\n", imgUsage(img.Usage))
	fmt.Fprintf(w, "   Created: %s\n", imgTime(img.Created))
	fmt.Fprintf(w, "  Modified: %s\n", imgTime(img.Modified))
	if img.Settings != "" {
		fmt.Fprintf(w, "  Settings: %s\n", img.Settings)
		for _, l := range strings.Split(img.SettingsText(), "\n") {
			fmt.Fprintf(w, "            %s\n", l)
		}
	}
}

// imageProps are show-image's properties, in machined's names.
func imageProps(img *images.Image) [][2]string {
	usec := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return strconv.FormatInt(t.UnixMicro(), 10)
	}
	usage := ""
	if img.Usage >= 0 {
		usage = strconv.FormatInt(img.Usage, 10)
	}
	return [][2]string{
		{"Name", img.Name},
		{"Path", img.Path},
		{"Type", img.Type},
		{"ReadOnly", strconv.FormatBool(img.ReadOnly)},
		{"CreationTimestamp", usec(img.Created)},
		{"ModificationTimestamp", usec(img.Modified)},
		{"Usage", usage},
		{"OS", img.OS},
		{"Settings", img.Settings},
	}
}

func printImageProps(w io.Writer, img *images.Image, only []string, valueOnly bool) {
	for _, kv := range imageProps(img) {
		if len(only) > 0 && !imgContains(only, kv[0]) {
			continue
		}
		if valueOnly {
			fmt.Fprintln(w, kv[1])
		} else {
			fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1])
		}
	}
}

func imgContains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
