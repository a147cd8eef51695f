package config

import "fmt"

// The set functions of the image, user namespace and mount options,
// referenced from flagTable (flags.go).

func setTemplate(p *argParser, v string) error {
	abs, err := p.absPath(v)
	if err != nil {
		return fmt.Errorf("--template=%s: %w", v, err)
	}
	p.c.Template = abs
	return nil
}

func setEphemeral(p *argParser, _ string) error {
	p.c.Ephemeral = true
	p.c.storageSet |= storageSetEphemeral
	return nil
}

func setVolatile(p *argParser, v string) error {
	m, err := ParseVolatile(optValue(v))
	if err != nil {
		return err
	}
	p.c.Volatile = m
	p.c.storageSet |= storageSetVolatile
	return nil
}

func setPrivateUsers(p *argParser, v string) error {
	p.c.storageSet |= storageSetUserNS
	return p.c.SetPrivateUsers(optValue(v))
}

func setPrivateUsersOwnership(p *argParser, v string) error {
	o, err := ParseOwnership(v)
	if err != nil {
		return err
	}
	p.c.PrivateUsers.Ownership = o
	p.c.storageSet |= storageSetUserNS
	return nil
}

func setPrivateUsersChown(p *argParser, v string) error {
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
}

func setShortU(p *argParser, _ string) error {
	p.c.SetU()
	p.c.storageSet |= storageSetUserNS
	return nil
}

func setInaccessible(p *argParser, v string) error {
	if v == "" || v[0] != '/' {
		return fmt.Errorf("--inaccessible=%s: the path must be absolute", v)
	}
	p.c.Inaccessible = append(p.c.Inaccessible, v)
	p.c.cmdline |= setCustomMounts
	return nil
}

func setOverlay(p *argParser, v string) error {
	return p.overlay(v, false)
}

func setOverlayRo(p *argParser, v string) error {
	return p.overlay(v, true)
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
