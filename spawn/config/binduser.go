package config

import (
	"errors"
	"fmt"
	"strings"
)

// ValidBindUserName reports whether s is a user name --bind-user= takes,
// as systemd's strict valid_user_group_name: a letter or "_" first, then
// letters, digits, "_" and "-", at most 31 characters.
func ValidBindUserName(s string) bool {
	if s == "" || len(s) > 31 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func (p *argParser) bindUser(v string) error {
	if !ValidBindUserName(v) {
		return fmt.Errorf("invalid user name to bind: %q", v)
	}
	p.c.BindUsers = appendUnique(p.c.BindUsers, v)
	p.c.cmdline |= setBindUser
	return nil
}

func appendUnique(list []string, v string) []string {
	for _, s := range list {
		if s == v {
			return list
		}
	}
	return append(list, v)
}

// parseFilesBindUser is [Files] BindUser=: user names separated by
// spaces, added to the list; empty clears it. An invalid name is ignored
// with a warning, as nspawn does.
func parseFilesBindUser(s *fileSettings, v string) error {
	if strings.TrimSpace(v) == "" {
		s.bindUsers, s.bindUsersSet = nil, false
		return nil
	}
	for _, n := range strings.Fields(v) {
		if !ValidBindUserName(n) {
			return errIgnoredInvalidUser{n}
		}
		s.bindUsers = appendUnique(s.bindUsers, n)
	}
	s.bindUsersSet = true
	return nil
}

type errIgnoredInvalidUser struct{ name string }

func (e errIgnoredInvalidUser) Error() string {
	return fmt.Sprintf("user name %q not valid, ignoring", e.name)
}

// checkBindUser refuses --bind-user= without a user namespace.
func (c *Config) checkBindUser() error {
	if len(c.BindUsers) > 0 && !c.PrivateUsers.Enabled() {
		return errors.New("--bind-user= requires --private-users (add -U or --private-users=pick)")
	}
	return nil
}
