package config

import "fmt"

// storageFlags are the set functions of the user namespace and image
// options, implemented in storage.go. They are attached to the entries of
// flagTable (flags.go) that have none, so the flag table stays the one
// place that lists options and their help.
var storageFlags = map[string]func(p *argParser, v string) error{
	"template": func(p *argParser, v string) error {
		abs, err := p.absPath(v)
		if err != nil {
			return fmt.Errorf("--template=%s: %w", v, err)
		}
		p.c.Template = abs
		return nil
	},
	"ephemeral": func(p *argParser, _ string) error {
		p.c.Ephemeral = true
		p.c.storageSet |= storageSetEphemeral
		return nil
	},
	"volatile": func(p *argParser, v string) error {
		m, err := ParseVolatile(optValue(v))
		if err != nil {
			return err
		}
		p.c.Volatile = m
		p.c.storageSet |= storageSetVolatile
		return nil
	},
	"private-users": func(p *argParser, v string) error {
		p.c.storageSet |= storageSetUserNS
		return p.c.SetPrivateUsers(optValue(v))
	},
	"private-users-ownership": func(p *argParser, v string) error {
		o, err := ParseOwnership(v)
		if err != nil {
			return err
		}
		p.c.PrivateUsers.Ownership = o
		p.c.storageSet |= storageSetUserNS
		return nil
	},
	"private-users-chown": func(p *argParser, v string) error {
		v = optValue(v)
		if v == "" {
			v = "chown"
		}
		o, err := ParseOwnership(v)
		if err != nil || (o != OwnershipChown && o != OwnershipOff) {
			return fmt.Errorf("--private-users-chown=%s: not a boolean", v)
		}
		p.c.PrivateUsers.Ownership = o
		p.c.storageSet |= storageSetUserNS
		return nil
	},
	"short-U": func(p *argParser, _ string) error {
		p.c.SetU()
		p.c.storageSet |= storageSetUserNS
		return nil
	},
	"inaccessible": func(p *argParser, v string) error {
		if v == "" || v[0] != '/' {
			return fmt.Errorf("--inaccessible=%s: the path must be absolute", v)
		}
		p.c.Inaccessible = append(p.c.Inaccessible, v)
		p.c.cmdline |= setCustomMounts
		return nil
	},
	"overlay":    func(p *argParser, v string) error { return p.overlay(v, false) },
	"overlay-ro": func(p *argParser, v string) error { return p.overlay(v, true) },
}

func init() {
	for i := range flagTable {
		d := &flagTable[i]
		name := d.long
		if name == "" {
			name = "short-" + d.short
		}
		if f, ok := storageFlags[name]; ok && d.set == nil {
			d.set = f
		}
	}
}

// optValue maps the parser's marker for an optional value that was not
// given to "".
func optValue(v string) string {
	if v == optArgValue || v == noArgValue {
		return ""
	}
	return v
}

func (p *argParser) overlay(v string, ro bool) error {
	o, err := ParseOverlay(v, ro)
	if err != nil {
		return err
	}
	p.c.Overlays = append(p.c.Overlays, o)
	p.c.cmdline |= setCustomMounts
	return nil
}

// absPath makes a path given on the command line absolute.
func (p *argParser) absPath(v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty path")
	}
	if v[0] == '/' {
		return v, nil
	}
	wd, err := p.env.getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + v, nil
}
