package config

import "testing"

func TestParseLinkJournal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		mode string
		try  bool
		bad  bool
	}{
		{"no", LinkJournalNo, false, false},
		{"auto", LinkJournalAuto, false, false},
		{"guest", LinkJournalGuest, false, false},
		{"host", LinkJournalHost, false, false},
		{"try-guest", LinkJournalGuest, true, false},
		{"try-host", LinkJournalHost, true, false},
		{"yes", LinkJournalAuto, false, false},
		{"false", LinkJournalNo, false, false},
		{"0", LinkJournalNo, false, false},
		{"try-auto", "", false, true},
		{"", "", false, true},
		{"Guest", "", false, true},
	} {
		m, try, err := ParseLinkJournal(tt.in)
		if (err != nil) != tt.bad || m != tt.mode || try != tt.try {
			t.Errorf("ParseLinkJournal(%q) = %q, %v, %v", tt.in, m, try, err)
		}
	}
}

func TestLinkJournalFlags(t *testing.T) {
	c := mustParse(t, "-D/srv/t", "-j")
	if c.LinkJournal != LinkJournalGuest || !c.LinkJournalTry {
		t.Errorf("-j: %q %v", c.LinkJournal, c.LinkJournalTry)
	}
	c = mustParse(t, "-D/srv/t", "--link-journal=host")
	if c.LinkJournal != LinkJournalHost || c.LinkJournalTry {
		t.Errorf("--link-journal=host: %q %v", c.LinkJournal, c.LinkJournalTry)
	}
	c = mustParse(t, "-D/srv/t")
	if c.LinkJournal != LinkJournalAuto {
		t.Errorf("default: %q", c.LinkJournal)
	}
	_, err := parseArgs([]string{"-D/srv/t", "--link-journal=sideways"}, testEnv(t))
	errContains(t, err, "invalid journal link mode")
	_, err = parseArgs([]string{"-D/srv/t", "-x", "--link-journal=guest"}, testEnv(t))
	errContains(t, err, "--ephemeral and --link-journal={host,guest} may not be combined")
	if _, err := parseArgs([]string{"-D/srv/t", "-x", "-j"}, testEnv(t)); err != nil {
		t.Errorf("-x -j: %v", err)
	}
}

func TestLinkJournalSettings(t *testing.T) {
	c := mustApply(t, mustParse(t, "-D/srv/t"), "[Exec]\nLinkJournal=try-host\n", true, "yes")
	if c.LinkJournal != LinkJournalHost || !c.LinkJournalTry {
		t.Errorf("trusted: %q %v", c.LinkJournal, c.LinkJournalTry)
	}
	c = mustApply(t, mustParse(t, "-D/srv/t"), "[Exec]\nLinkJournal=host\n", false, "yes")
	if c.LinkJournal != LinkJournalAuto || len(c.Warnings) != 1 {
		t.Errorf("untrusted: %q %v", c.LinkJournal, c.Warnings)
	}
	c = mustApply(t, mustParse(t, "-D/srv/t", "--link-journal=no"), "[Exec]\nLinkJournal=host\n", true, "yes")
	if c.LinkJournal != LinkJournalNo {
		t.Errorf("command line wins: %q", c.LinkJournal)
	}
	if err := apply(t, mustParse(t, "-D/srv/t"), "[Exec]\nLinkJournal=bogus\n", true, "yes"); err == nil {
		t.Error("LinkJournal=bogus accepted")
	}
}
