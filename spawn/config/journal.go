package config

import (
	"errors"
	"fmt"
)

// Journal link modes (--link-journal=, [Exec] LinkJournal=). The zero value
// is nspawn's default, auto.
const (
	LinkJournalAuto  = ""
	LinkJournalNo    = "no"
	LinkJournalGuest = "guest"
	LinkJournalHost  = "host"
)

// ParseLinkJournal parses a --link-journal= value as nspawn's
// parse_link_journal: no, auto, guest, host, try-guest, try-host, or a
// boolean (true meaning auto, false no).
func ParseLinkJournal(v string) (mode string, try bool, err error) {
	switch v {
	case "auto":
		return LinkJournalAuto, false, nil
	case "guest":
		return LinkJournalGuest, false, nil
	case "host":
		return LinkJournalHost, false, nil
	case "try-guest":
		return LinkJournalGuest, true, nil
	case "try-host":
		return LinkJournalHost, true, nil
	}
	b, err := ParseBool(v)
	if err != nil {
		return "", false, fmt.Errorf("invalid journal link mode %q: use one of no, auto, guest, host, try-guest, try-host", v)
	}
	if b {
		return LinkJournalAuto, false, nil
	}
	return LinkJournalNo, false, nil
}

// HostJournalDir is the host's journal directory the container's journal
// is linked under: $NETSPAWN_HOST_JOURNAL_DIR or /var/log/journal (tests
// move it).
func HostJournalDir() string { return envDir("NETSPAWN_HOST_JOURNAL_DIR", "/var/log/journal") }

// checkLinkJournal refuses an explicit guest or host link with -x, as
// nspawn does (the try- modes and auto are skipped silently instead).
func (c *Config) checkLinkJournal() error {
	if c.Ephemeral && (c.LinkJournal == LinkJournalGuest || c.LinkJournal == LinkJournalHost) && !c.LinkJournalTry {
		return errors.New("--ephemeral and --link-journal={host,guest} may not be combined: use --link-journal=try-host or try-guest, or drop -x")
	}
	return nil
}

func (p *argParser) linkJournal(v string) error {
	m, try, err := ParseLinkJournal(v)
	if err != nil {
		return fmt.Errorf("--link-journal=%s: %w", v, err)
	}
	p.c.LinkJournal, p.c.LinkJournalTry = m, try
	p.c.cmdline |= setLinkJournal
	return nil
}

// linkJournalSetting is a .nspawn file's LinkJournal=.
type linkJournalSetting struct {
	mode string
	try  bool
}
