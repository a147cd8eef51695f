package ctlcmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/spf13/cobra"
)

// Every verb that takes a NAME (or a file) says how to complete it, and
// verbArgs names no verb that does not exist.
func TestVerbArgs(t *testing.T) {
	root := NewRoot(&bytes.Buffer{})
	seen := map[string]bool{}
	takesArgs := regexp.MustCompile(`\s[\[]*[A-Z]`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		seen[c.Name()] = true
		if c.Runnable() && takesArgs.MatchString(c.Use) {
			if _, ok := verbArgs[c.Name()]; !ok {
				t.Errorf("verb %q (%s) is not in verbArgs (completion.go)", c.Name(), c.Use)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	for v, spec := range verbArgs {
		if !seen[v] {
			t.Errorf("verbArgs has %q, which is no verb", v)
		}
		for _, w := range strings.Fields(spec) {
			switch strings.TrimSuffix(w, "...") {
			case "machine", "image", "file", "dir", "bool", "none":
			default:
				t.Errorf("verbArgs[%q]: unknown kind %q", v, w)
			}
		}
	}
}

// complete runs cobra's hidden __complete verb, as the shell scripts do,
// and returns the candidates and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out bytes.Buffer
	root := NewRoot(&out)
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var names []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		names = append(names, name)
	}
	return names, lines[len(lines)-1]
}

func TestCompleteImages(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"alpha", "beta", ".hidden"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("NETSPAWN_IMAGES_DIR", dir)
	if got, dir := complete(t, "start", ""); strings.Join(got, " ") != "alpha beta" || dir != ":4" {
		t.Errorf("start: %q %s, want alpha beta :4 (no files)", got, dir)
	}
	if got, _ := complete(t, "remove", "alpha", ""); strings.Join(got, " ") != "beta" {
		t.Errorf("remove alpha: %q, want beta", got)
	}
	if got, _ := complete(t, "read-only", "alpha", ""); strings.Join(got, " ") != "yes no" {
		t.Errorf("read-only alpha: %q", got)
	}
	if got, _ := complete(t, "clone", "alpha", ""); len(got) != 0 {
		t.Errorf("clone's new name completed: %q", got)
	}
	if got, _ := complete(t, "--output", ""); strings.Join(got, " ") != "table json" {
		t.Errorf("--output: %q", got)
	}
	if got, _ := complete(t, ""); !contains(got, "list") || !contains(got, "list-images") || !contains(got, "shell") {
		t.Errorf("verbs: %q", got)
	}
}

// Running machines come from netspawnd (here a fake one); with none
// answering, completion offers nothing and starts nothing.
func TestCompleteRunningMachines(t *testing.T) {
	dir := t.TempDir()
	if got, _ := complete(t, "--runtime-dir", dir, "status", ""); len(got) != 0 {
		t.Errorf("no netspawnd: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "netspawnd.log")); err == nil {
		t.Error("completion started netspawnd")
	}
	ln, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					var req api.Request
					_ = json.Unmarshal(sc.Bytes(), &req)
					resp := api.Response{ID: req.ID}
					resp.Result, _ = json.Marshal([]api.Machine{{Name: "web", Leader: 42}, {Name: "db", Leader: 43}, {Name: "elsewhere", Host: "h2"}})
					b, _ := json.Marshal(resp)
					_, _ = c.Write(append(b, '\n'))
				}
			}()
		}
	}()
	if got, _ := complete(t, "--runtime-dir", dir, "shell", ""); strings.Join(got, " ") != "db web" {
		t.Errorf("shell: %q, want db web", got)
	}
	if got, _ := complete(t, "--runtime-dir", dir, "poweroff", "web", ""); strings.Join(got, " ") != "db" {
		t.Errorf("poweroff web: %q, want db", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
