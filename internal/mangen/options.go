package main

import (
	"strings"

	"github.com/netspawn/netspawn/netctl/daemonflags"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// option is one command line option of a getopt-style program (netspawn,
// netspawnd), as the pages and the completion scripts need it.
type option struct {
	long, short string
	arg         string // config.ArgNone, ArgRequired or ArgOptional
	meta        string
	help        string
	group       string
	supported   bool
	def         string   // default value, "" when none is worth showing
	values      []string // fixed values
	complete    string   // config.Complete* ("file", "dir", "machine", ...)
}

// program is a getopt-style program: its options in groups.
type program struct {
	name   string
	groups []string
	opts   []option
}

// netspawnOptions is netspawn's flag table.
func netspawnOptions() program {
	p := program{name: "netspawn", groups: config.FlagGroups()}
	for _, d := range config.FlagDocs() {
		p.opts = append(p.opts, option{long: d.Long, short: d.Short, arg: d.Arg, meta: d.Meta, help: d.Help,
			group: d.Group, supported: d.Supported, values: d.Values, complete: d.Complete})
	}
	return p
}

// netspawndOptions is netspawnd's FlagSet.
func netspawndOptions() program {
	fl, _ := daemonflags.New()
	return program{name: "netspawnd", groups: []string{""}, opts: pflagOptions(fl)}
}

// pflagOptions reads a FlagSet: a boolean takes an optional =true|false,
// other values are required; the daemonflags annotations give values and
// file or directory completion.
func pflagOptions(fl *pflag.FlagSet) []option {
	var out []option
	fl.SortFlags = false // the order they are defined in, which groups them
	fl.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		o := option{long: f.Name, short: f.Shorthand, help: f.Usage, supported: true, arg: config.ArgRequired}
		meta, usage := pflag.UnquoteUsage(f)
		o.help = usage
		o.meta = strings.ToUpper(meta)
		if o.meta == "STRING" || o.meta == "STRINGARRAY" || o.meta == "STRINGSLICE" || o.meta == "" {
			o.meta = "VALUE"
		}
		switch f.Value.Type() {
		case "bool":
			// A switch that is off by default is given alone; one that is on
			// is turned off with =false.
			o.arg, o.meta, o.values = config.ArgOptional, "BOOL", []string{"true", "false"}
			if f.DefValue == "false" {
				o.arg, o.meta, o.values = config.ArgNone, "", nil
			}
		case "duration":
			o.meta = "DURATION"
		case "int":
			o.meta = "N"
		}
		if v := f.Annotations[daemonflags.AnnotationValues]; len(v) > 0 {
			o.values = v
			o.meta = "MODE"
			if f.Name == "log-level" {
				o.meta = "LEVEL"
			}
		}
		if _, ok := f.Annotations[cobra.BashCompSubdirsInDir]; ok {
			o.complete, o.meta = config.CompleteDir, "DIRECTORY"
		}
		if v := f.Annotations[daemonflags.AnnotationComplete]; len(v) > 0 {
			o.complete = v[0]
			o.meta = strings.ToUpper(v[0])
			if o.meta == "DIR" {
				o.meta = "DIRECTORY"
			}
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "[]" {
			o.def = f.DefValue
		}
		out = append(out, o)
	})
	return out
}

// takesArg tells whether the option's value may be the next word.
func (o *option) takesArg() bool { return o.arg == config.ArgRequired }

// names lists the option's spellings: -s, --long.
func (o *option) names() []string {
	var n []string
	if o.short != "" {
		n = append(n, "-"+o.short)
	}
	if o.long != "" {
		n = append(n, "--"+o.long)
	}
	return n
}
