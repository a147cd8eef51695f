package config

import (
	"strings"
	"testing"
)

func TestStorageFlags(t *testing.T) {
	c := mustParse(t, "-D/srv/t", "--private-users=pick", "--private-users-ownership=map", "-x",
		"--overlay=+/var::/var", "--overlay-ro=/a:/b:/c", "--inaccessible=/etc/shadow", "--template=/srv/tpl", "--volatile=state")
	eq(t, c.PrivateUsers, PrivateUsers{Mode: UserNSPick, Range: 65536, Ownership: OwnershipMap})
	eq(t, c.Ephemeral, true)
	eq(t, c.Volatile, VolatileState)
	eq(t, c.Template, "/srv/tpl")
	eq(t, c.Inaccessible, []string{"/etc/shadow"})
	eq(t, len(c.Overlays), 2)
	eq(t, c.Overlays[1].ReadOnly, true)
	c = mustParse(t, "-D/srv/t", "--private-users", "--private-users-chown")
	eq(t, c.PrivateUsers, PrivateUsers{Mode: UserNSYes, Range: 65536, Ownership: OwnershipChown})
	c = mustParse(t, "-D/srv/t", "--private-users=1000000:5000")
	eq(t, c.PrivateUsers, PrivateUsers{Mode: UserNSFixed, Shift: 1000000, Range: 5000})
	if _, err := parseArgs([]string{"-D/srv/t", "--private-users=what"}, testEnv(t)); err == nil {
		t.Error("--private-users=what accepted")
	}
	if _, err := parseArgs([]string{"-D/srv/t", "--inaccessible=rel"}, testEnv(t)); err == nil {
		t.Error("relative --inaccessible accepted")
	}
}

func TestStorageSettingsKeys(t *testing.T) {
	file := `[Exec]
PrivateUsers=pick
Ephemeral=yes
[Files]
PrivateUsersOwnership=chown
Volatile=overlay
Overlay=+/var::/var
Inaccessible=/etc/shadow
`
	c := mustParse(t, "-D/srv/t")
	if err := ApplySettings(c, strings.NewReader(file), "t.nspawn", true, "yes"); err != nil {
		t.Fatal(err)
	}
	eq(t, c.PrivateUsers, PrivateUsers{Mode: UserNSPick, Range: 65536, Ownership: OwnershipChown})
	eq(t, c.Ephemeral, true)
	eq(t, c.Volatile, VolatileOverlay)
	eq(t, c.Inaccessible, []string{"/etc/shadow"})
	eq(t, len(c.Overlays), 1)

	// The command line wins, unless override.
	c = mustParse(t, "-D/srv/t", "--private-users=no", "--volatile=no")
	if err := ApplySettings(c, strings.NewReader(file), "t.nspawn", true, "yes"); err != nil {
		t.Fatal(err)
	}
	eq(t, c.PrivateUsers.Mode, UserNSOff)
	eq(t, c.Volatile, VolatileNo)
	eq(t, c.Ephemeral, true)
	c = mustParse(t, "-D/srv/t", "--private-users=no")
	if err := ApplySettings(c, strings.NewReader(file), "t.nspawn", true, "override"); err != nil {
		t.Fatal(err)
	}
	eq(t, c.PrivateUsers.Mode, UserNSPick)

	// Untrusted files cannot set privileged keys.
	c = mustParse(t, "-D/srv/t")
	if err := ApplySettings(c, strings.NewReader(file), "t.nspawn", false, "yes"); err != nil {
		t.Fatal(err)
	}
	eq(t, c.PrivateUsers.Mode, UserNSOff)
	eq(t, len(c.Overlays), 0)

	err := ApplySettings(mustParse(t, "-D/srv/t"), strings.NewReader("[Files]\nVolatile=sometimes\n"), "bad.nspawn", true, "yes")
	if err == nil || !strings.Contains(err.Error(), "bad.nspawn:2") || !strings.Contains(err.Error(), "Volatile") {
		t.Errorf("bad value: %v", err)
	}
}
