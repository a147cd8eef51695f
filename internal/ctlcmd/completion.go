package ctlcmd

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/netspawn/netspawn/images"
	"github.com/netspawn/netspawn/netctl/api"
	"github.com/spf13/cobra"
)

// verbArgs says what each verb's arguments are, for shell completion
// (cobra's `netspawnctl completion bash|zsh|fish` scripts ask the program
// itself through its hidden __complete verb): one word per position, from
// machine (a running machine of this host), image (an image in the image
// directories), file, dir, bool and none; a trailing "..." repeats the last.
// TestVerbArgs checks that every verb taking a NAME is here.
var verbArgs = map[string]string{
	"shell": "machine", "login": "machine", "status": "machine", "show": "machine",
	"poweroff": "machine...", "reboot": "machine...", "terminate": "machine...", "kill": "machine...",
	"set-property": "machine", "bind": "machine file", "copy-to": "machine file", "copy-from": "machine none file",
	"start": "image...", "enable": "image...", "disable": "image...", "logs": "image", "release": "image",
	"journal": "image", "image-status": "image...", "show-image": "image...", "clone": "image", "rename": "image",
	"read-only": "image bool", "remove": "image...", "export-tar": "image file",
	"import-fs": "dir", "import-tar": "file", "pull-tar": "none", "create": "none", "leases": "none",
}

// completionTimeout bounds how long completing a running machine's name
// waits for netspawnd (which completion never starts).
const completionTimeout = 2 * time.Second

// addCompletions gives every verb in verbArgs its argument completion, and
// the global flags theirs.
func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if spec, ok := verbArgs[c.Name()]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = argsCompleter(strings.Fields(spec))
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.MarkPersistentFlagDirname("runtime-dir")
}

func argsCompleter(spec []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		kind := "none"
		switch n := len(args); {
		case n < len(spec):
			kind = spec[n]
		case len(spec) > 0 && strings.HasSuffix(spec[len(spec)-1], "..."):
			kind = spec[len(spec)-1]
		}
		nofile := cobra.ShellCompDirectiveNoFileComp
		switch strings.TrimSuffix(kind, "...") {
		case "machine":
			return runningMachines(cmd, args), nofile
		case "image":
			return imageNames(args), nofile
		case "bool":
			return []string{"yes", "no"}, nofile
		case "file":
			return nil, cobra.ShellCompDirectiveDefault
		case "dir":
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
		return nil, nofile
	}
}

// imageNames lists the images (hidden ones aside), less those already on
// the command line.
func imageNames(skip []string) []string {
	imgs, err := images.NewStore().List(false)
	if err != nil {
		return nil
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.Name)
	}
	return without(out, skip)
}

// runningMachines asks a running netspawnd for this host's machines; it
// never starts one.
func runningMachines(cmd *cobra.Command, skip []string) []string {
	dir := ""
	if f := cmd.Flag("runtime-dir"); f != nil {
		dir = f.Value.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	c, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: dir, NoStart: true})
	if err != nil {
		return nil
	}
	defer c.Close()
	ms, err := c.List(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range localMachines(ms) {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return without(out, skip)
}

func without(names, skip []string) []string {
	out := names[:0:0]
	for _, n := range names {
		dup := false
		for _, s := range skip {
			dup = dup || s == n
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}
