package spawn

import (
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/plan"
)

func TestCheckSELinux(t *testing.T) {
	on := func() bool { return true }
	off := func() bool { return false }
	if err := checkSELinux(&config.Config{}, off); err != nil {
		t.Errorf("no options, SELinux off: %v", err)
	}
	c := &config.Config{SELinuxContext: "system_u:system_r:container_t:s0"}
	if err := checkSELinux(c, on); err != nil {
		t.Errorf("-Z with SELinux: %v", err)
	}
	err := checkSELinux(c, off)
	if err == nil || !strings.Contains(err.Error(), "--selinux-context=system_u:system_r:container_t:s0: SELinux is not enabled on this host") ||
		!strings.Contains(err.Error(), "drop the option") {
		t.Errorf("-Z without SELinux: %v", err)
	}
	c = &config.Config{SELinuxAPIFSContext: "x_t"}
	if err := checkSELinux(c, off); err == nil || !strings.Contains(err.Error(), "--selinux-apifs-context=x_t: SELinux is not enabled") {
		t.Errorf("-L without SELinux: %v", err)
	}
}

func TestWithContext(t *testing.T) {
	for _, tt := range [][3]string{
		{"mode=0755", "", "mode=0755"},
		{"mode=0755", "a_t:s0:c1,c2", `mode=0755,context="a_t:s0:c1,c2"`},
		{"", "b_t", `context="b_t"`},
	} {
		if got := withContext(tt[0], tt[1]); got != tt[2] {
			t.Errorf("withContext(%q, %q) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
}

// -L labels every tmpfs and devpts of the API file systems, and nothing
// else; without it the options are as before.
func TestAPIMountStepsLabel(t *testing.T) {
	const label = "system_u:object_r:container_file_t:s0:c1,c2"
	for _, l := range []string{"", label} {
		cfg := &config.Config{Machine: "m", SELinuxAPIFSContext: l}
		n := 0
		for _, st := range apiMountSteps("/r", &initMsg{Config: cfg}) {
			if st.Kind != plan.Mount {
				continue
			}
			has := strings.Contains(st.Data, `context="`+label+`"`)
			wantIt := l != "" && (st.FSType == "tmpfs" || st.FSType == "devpts")
			if has != wantIt {
				t.Errorf("label %q: mount of %s on %s has data %q", l, st.FSType, st.Path, st.Data)
			}
			if has {
				n++
			}
		}
		if l != "" && n != 5 { // /dev, /dev/pts, /dev/shm, /run, /tmp
			t.Errorf("label on %d mounts, want 5", n)
		}
	}
}

func TestNotifyStep(t *testing.T) {
	st := notifyStep("/var/lib/machines/a-very-long-machine-name/../x", 7)
	if st.Kind != plan.BindSocket || st.Path != "/var/lib/machines/x/run/host" || st.Data != "notify" || st.Arg != 7 || st.Mode != 0o755 {
		t.Errorf("notifyStep = %+v", st)
	}
}
