package nsswitch

import (
	"errors"
	"strings"
	"testing"
)

// debian is bookworm's stock /etc/nsswitch.conf.
const debian = `# /etc/nsswitch.conf
#
# Example configuration of GNU Name Service Switch functionality.

passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
`

func TestEnableDisable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"hosts:          files dns\n", "hosts:          files netspawn dns\n"},
		{"hosts: files mymachines resolve [!UNAVAIL=return] myhostname dns\n", "hosts: files mymachines netspawn resolve [!UNAVAIL=return] myhostname dns\n"},
		{"hosts: files\n", "hosts: files netspawn\n"},
		{"hosts: files # local only\n", "hosts: files netspawn # local only\n"},
		{"hosts:\tdns\tfiles", "hosts:\tnetspawn dns\tfiles"},
		{"hosts: files [NOTFOUND=return]\n", "hosts: files [NOTFOUND=return] netspawn\n"},
		{"hosts:\n", "hosts: netspawn\n"},
		{"# hosts: dns\nhosts: files dns\n", "# hosts: dns\nhosts: files netspawn dns\n"},
		{"  hosts: files dnsx dns\n", "  hosts: files dnsx netspawn dns\n"},
	} {
		got, changed, err := Enable(c.in)
		if err != nil || !changed || got != c.want {
			t.Errorf("Enable(%q) = %q, %v, %v; want %q", c.in, got, changed, err, c.want)
			continue
		}
		if !Enabled(got) {
			t.Errorf("Enabled(%q) = false", got)
		}
		// Disable undoes it exactly.
		back, changed := Disable(got)
		if !changed || back != c.in {
			t.Errorf("Disable(%q) = %q, %v; want %q", got, back, changed, c.in)
		}
		if Enabled(back) {
			t.Errorf("Enabled(%q) = true", back)
		}
	}
}

func TestEnableDebian(t *testing.T) {
	got, changed, err := Enable(debian)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if want := strings.Replace(debian, "hosts:          files dns", "hosts:          files netspawn dns", 1); got != want {
		t.Errorf("Enable(debian) = %q", got)
	}
	if again, changed, _ := Enable(got); changed || again != got {
		t.Errorf("second Enable changed the file: %q", again)
	}
	back, _ := Disable(got)
	if back != debian {
		t.Errorf("Disable(Enable(debian)) = %q", back)
	}
}

func TestDisable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"hosts: files netspawn dns\n", "hosts: files dns\n"},
		{"hosts: netspawn files dns\n", "hosts: files dns\n"},
		{"hosts:  netspawn  files dns\n", "hosts:  files dns\n"},
		{"hosts: files netspawn [NOTFOUND=return] dns\n", "hosts: files dns\n"},
		{"hosts: files netspawn [ NOTFOUND=return ] dns\n", "hosts: files dns\n"},
		{"hosts: files dns netspawn\n", "hosts: files dns\n"},
		{"hosts: files netspawn # machines\n", "hosts: files # machines\n"},
		{"hosts: files netspawn dns netspawn\n", "hosts: files dns\n"},
		{"hosts: files netspawn dns\nhosts: netspawn\n", "hosts: files dns\nhosts:\n"},
		// Comments and other databases are not touched.
		{"#hosts: netspawn\nnetworks: netspawn\nhosts: files netspawn\n", "#hosts: netspawn\nnetworks: netspawn\nhosts: files\n"},
	} {
		got, changed := Disable(c.in)
		if !changed || got != c.want {
			t.Errorf("Disable(%q) = %q, %v; want %q", c.in, got, changed, c.want)
		}
		if Enabled(got) {
			t.Errorf("Enabled(%q) = true", got)
		}
	}
	for _, in := range []string{"hosts: files dns\n", "hosts: files netspawnx xnetspawn\n", "# hosts: netspawn\n", ""} {
		if got, changed := Disable(in); changed || got != in {
			t.Errorf("Disable(%q) = %q, %v; want it unchanged", in, got, changed)
		}
	}
}

func TestEnableNoHostsLine(t *testing.T) {
	for _, in := range []string{"", "passwd: files\n", "# hosts: files dns\n"} {
		if _, _, err := Enable(in); !errors.Is(err, ErrNoHostsLine) {
			t.Errorf("Enable(%q): %v, want ErrNoHostsLine", in, err)
		}
	}
	if _, changed, err := Enable("hosts: files netspawn dns\n"); changed || err != nil {
		t.Errorf("Enable of an enabled file: %v, %v", changed, err)
	}
}

func FuzzDisable(f *testing.F) {
	f.Add(debian)
	f.Add("hosts: netspawn [x] netspawn\n")
	f.Fuzz(func(t *testing.T, in string) {
		out, _ := Disable(in)
		if Enabled(out) {
			t.Fatalf("Disable(%q) = %q still names netspawn", in, out)
		}
		if en, _, err := Enable(out); err == nil && !Enabled(en) {
			t.Fatalf("Enable(%q) = %q does not name netspawn", out, en)
		}
	})
}
