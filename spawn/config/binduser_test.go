package config

import "testing"

func TestBindUserFlags(t *testing.T) {
	for _, n := range []string{"alice", "_svc", "a-b_1", "A"} {
		if !ValidBindUserName(n) {
			t.Errorf("%q refused", n)
		}
	}
	for _, n := range []string{"", "1abc", "-x", "a.b", "a b", "root:x", "abcdefghijabcdefghijabcdefghijab"} {
		if ValidBindUserName(n) {
			t.Errorf("%q accepted", n)
		}
	}
	c := mustParse(t, "-D/srv/t", "-U", "--bind-user=alice", "--bind-user=bob", "--bind-user=alice")
	if len(c.BindUsers) != 2 || c.BindUsers[0] != "alice" || c.BindUsers[1] != "bob" {
		t.Errorf("BindUsers %q", c.BindUsers)
	}
	_, err := parseArgs([]string{"-D/srv/t", "-U", "--bind-user=9x"}, testEnv(t))
	errContains(t, err, `invalid user name to bind: "9x"`)
	c = mustParse(t, "-D/srv/t", "--bind-user=alice")
	errContains(t, c.Validate(), "--bind-user= requires --private-users")
}

func TestBindUserSettings(t *testing.T) {
	c := mustApply(t, mustParse(t, "-D/srv/t"), "[Exec]\nPrivateUsers=pick\n[Files]\nBindUser=alice bob\nBindUser=carol\n", true, "yes")
	if len(c.BindUsers) != 3 || c.BindUsers[2] != "carol" {
		t.Errorf("trusted: %q", c.BindUsers)
	}
	c = mustApply(t, mustParse(t, "-D/srv/t", "-U"), "[Files]\nBindUser=alice\n", false, "yes")
	if len(c.BindUsers) != 0 || len(c.Warnings) != 1 {
		t.Errorf("untrusted: %q %q", c.BindUsers, c.Warnings)
	}
	c = mustApply(t, mustParse(t, "-D/srv/t", "-U", "--bind-user=dave"), "[Files]\nBindUser=alice\n", true, "yes")
	if len(c.BindUsers) != 1 || c.BindUsers[0] != "dave" {
		t.Errorf("the command line wins: %q", c.BindUsers)
	}
	c = mustApply(t, mustParse(t, "-D/srv/t", "-U"), "[Files]\nBindUser=alice\nBindUser=\nBindUser=9bad\n", true, "yes")
	if len(c.BindUsers) != 0 || len(c.Warnings) != 1 {
		t.Errorf("reset and invalid: %q %q", c.BindUsers, c.Warnings)
	}
	if err := apply(t, mustParse(t, "-D/srv/t"), "[Files]\nBindUser=alice\n", true, "yes"); err == nil {
		t.Error("BindUser= without a user namespace accepted")
	}
}
