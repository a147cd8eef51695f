package config

import (
	"fmt"
)

// storageSet records which storage options the command line gave, so a
// .nspawn file does not override them (nspawn's SETTING_USERNS,
// SETTING_EPHEMERAL and SETTING_VOLATILE_MODE bits).
type storageSet uint8

const (
	storageSetUserNS storageSet = 1 << iota
	storageSetEphemeral
	storageSetVolatile
)

// storageSettings are the storage keys of one .nspawn file.
type storageSettings struct {
	privateUsers *PrivateUsers
	ownership    *Ownership
	ephemeral    *bool
	volatile     *VolatileMode
	overlays     []OverlayMount
	inaccessible []string
	usernsLine   int // first line of a user namespace key
	mountsLine   int // first line of an Overlay= or Inaccessible= key
}

// noteLine remembers where the first privileged storage key was, for the
// warning about an untrusted file.
func (st *storageSettings) noteLine(key string, line int) {
	switch key {
	case "PrivateUsers", "PrivateUsersOwnership", "PrivateUsersChown":
		if st.usernsLine == 0 {
			st.usernsLine = line
		}
	case "Overlay", "OverlayReadOnly", "Inaccessible":
		if st.mountsLine == 0 {
			st.mountsLine = line
		}
	}
}

// The parse functions of the image, user namespace and mount keys,
// referenced from settingKeys (settings.go).

func parseExecPrivateUsers(s *fileSettings, v string) error {
	m, shift, n, err := ParsePrivateUsers(v)
	if err != nil {
		return err
	}
	s.storage.privateUsers = &PrivateUsers{Mode: m, Shift: shift, Range: n}
	return nil
}

func parseExecEphemeral(s *fileSettings, v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return err
	}
	s.storage.ephemeral = &b
	return nil
}

func parseFilesVolatile(s *fileSettings, v string) error {
	m, err := ParseVolatile(v)
	if err != nil {
		return err
	}
	s.storage.volatile = &m
	return nil
}

func parseFilesPrivateUsersOwnership(s *fileSettings, v string) error {
	o, err := ParseOwnership(v)
	if err != nil {
		return err
	}
	s.storage.ownership = &o
	return nil
}

func parseFilesPrivateUsersChown(s *fileSettings, v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return err
	}
	o := OwnershipOff
	if b {
		o = OwnershipChown
	}
	s.storage.ownership = &o
	return nil
}

func parseFilesOverlay(s *fileSettings, v string) error {
	o, err := ParseOverlay(v, false)
	s.storage.overlays = append(s.storage.overlays, o)
	return err
}

func parseFilesOverlayReadOnly(s *fileSettings, v string) error {
	o, err := ParseOverlay(v, true)
	s.storage.overlays = append(s.storage.overlays, o)
	return err
}

func parseFilesInaccessible(s *fileSettings, v string) error {
	if v == "" || v[0] != '/' {
		return fmt.Errorf("path %q must be absolute", v)
	}
	s.storage.inaccessible = append(s.storage.inaccessible, v)
	return nil
}

// mergeStorage copies the file's storage settings into c, unless the
// command line gave them (and the mode is not override). The user
// namespace and mount keys are privileged: ignored, with a warning, from an
// untrusted file.
func (s *fileSettings) mergeStorage(c *Config, override bool) {
	st := s.storage
	set := c.storageSet
	cmdMounts := c.cmdline&setCustomMounts != 0
	if override {
		set, cmdMounts = 0, false
	}
	if set&storageSetUserNS == 0 && (st.privateUsers != nil || st.ownership != nil) && !s.trusted {
		s.warn(st.usernsLine, "ignoring PrivateUsers= and PrivateUsersOwnership= settings, file is not trusted")
	} else if set&storageSetUserNS == 0 {
		if st.privateUsers != nil {
			own := c.PrivateUsers.Ownership
			c.PrivateUsers = *st.privateUsers
			c.PrivateUsers.Ownership = own
		}
		if st.ownership != nil {
			c.PrivateUsers.Ownership = *st.ownership
		}
	}
	if set&storageSetEphemeral == 0 && st.ephemeral != nil {
		c.Ephemeral = *st.ephemeral
	}
	if set&storageSetVolatile == 0 && st.volatile != nil {
		c.Volatile = *st.volatile
	}
	if !cmdMounts && len(st.overlays)+len(st.inaccessible) > 0 {
		if !s.trusted {
			s.warn(st.mountsLine, "ignoring Overlay=, OverlayReadOnly= and Inaccessible= settings, file is not trusted")
			return
		}
		c.Overlays, c.Inaccessible = st.overlays, st.inaccessible
	}
}
