// Command mangen writes netspawn's manual pages and shell completions from
// the programs' own tables, so that they cannot drift from the code:
// netspawn(1) from spawn/config's flag table, netspawn.nspawn(5) from its
// settings table, netspawnd(8) from netctl/daemonflags' FlagSet and
// netspawnctl(1) from internal/ctlcmd's command tree; the bash, zsh and fish
// completions of the three programs from the same tables.
//
//	go run ./internal/mangen -o bin   # make man
//
// writes DIR/man/man{1,5,8}/*, DIR/completion/{bash,zsh,fish}/*.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	out := flag.String("o", "bin", "output directory")
	date := flag.String("date", "", "date in the pages' footer (default: none, for reproducible builds)")
	version := flag.String("version", "", "version in the pages' footer")
	flag.Parse()
	if err := generate(*out, meta{date: *date, version: *version}); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

// file is one generated file, relative to the output directory.
type file struct {
	path  string
	write func(io.Writer) error
}

// files lists everything mangen makes.
func files(m meta) []file {
	// Defaults that follow the environment are shown as they are without it.
	for _, v := range []string{"NETSPAWN_RUNTIME_DIR", "NETSPAWN_STATE_DIR", "NETSPAWN_RESOLV_CONF"} {
		os.Unsetenv(v)
	}
	const (
		flagSrc   = "spawn/config's flag table"
		daemonSrc = "netctl/daemonflags"
	)
	fs := []file{
		{"man/man1/netspawn.1", netspawnPage(m).Render},
		{"man/man1/netspawnctl.1", netspawnctlPage(m).Render},
		{"man/man5/netspawn.nspawn.5", nspawnPage(m).Render},
		{"man/man8/netspawnd.8", netspawndPage(m).Render},
		{"completion/bash/netspawn", func(w io.Writer) error { return bashScript(w, netspawnOptions(), flagSrc) }},
		{"completion/zsh/_netspawn", func(w io.Writer) error { return zshScript(w, netspawnOptions(), flagSrc) }},
		{"completion/fish/netspawn.fish", func(w io.Writer) error { return fishScript(w, netspawnOptions(), flagSrc) }},
		{"completion/bash/netspawnd", func(w io.Writer) error { return bashScript(w, netspawndOptions(), daemonSrc) }},
		{"completion/zsh/_netspawnd", func(w io.Writer) error { return zshScript(w, netspawndOptions(), daemonSrc) }},
		{"completion/fish/netspawnd.fish", func(w io.Writer) error { return fishScript(w, netspawndOptions(), daemonSrc) }},
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		p := map[string]string{"bash": "bash/netspawnctl", "zsh": "zsh/_netspawnctl", "fish": "fish/netspawnctl.fish"}[sh]
		fs = append(fs, file{"completion/" + p, func(w io.Writer) error { return ctlScripts(w, sh) }})
	}
	return fs
}

func generate(dir string, m meta) error {
	for _, f := range files(m) {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// manPages are the pages' paths, for tests.
func manPages(m meta) []file {
	var out []file
	for _, f := range files(m) {
		if strings.HasPrefix(f.path, "man/") {
			out = append(out, f)
		}
	}
	return out
}
