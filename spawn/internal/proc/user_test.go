package proc

import (
	"reflect"
	"strings"
	"testing"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
# a comment:x:5:5:::
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
broken:x:12:notanumber::/:/bin/sh
short:x:13
`

const group = `root:x:0:
wheel:x:10:alice,bob
users:x:100:bob
alice:x:1000:
audio:x:29:alice
`

func TestFindPasswd(t *testing.T) {
	for _, name := range []string{"alice", "1000"} {
		u, err := findPasswd(strings.NewReader(passwd), name)
		if err != nil || u == nil || u.Name != "alice" || u.UID != 1000 || u.GID != 1000 || u.Home != "/home/alice" || u.Shell != "/bin/sh" {
			t.Errorf("%s: %+v %v", name, u, err)
		}
	}
	if u, err := findPasswd(strings.NewReader(passwd), "nobody"); u != nil || err != nil {
		t.Errorf("nobody: %+v %v", u, err)
	}
	if _, err := findPasswd(strings.NewReader(passwd), "broken"); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("a malformed entry: %v", err)
	}
	if u, _ := findPasswd(strings.NewReader(passwd), "short"); u != nil {
		t.Errorf("a short line matched: %+v", u)
	}
}

func TestFindGroups(t *testing.T) {
	if got := findGroups(strings.NewReader(group), "alice", 1000); !reflect.DeepEqual(got, []int{1000, 10, 29}) {
		t.Errorf("alice: %v", got)
	}
	if got := findGroups(strings.NewReader(group), "root", 0); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("root: %v", got)
	}
}

func TestSetEnv(t *testing.T) {
	env := []string{"PATH=/bin", "HOME=/root"}
	env = SetEnv(env, "HOME", "HOME=/home/a")
	env = SetEnv(env, "TERM", "TERM=vt220")
	if !reflect.DeepEqual(env, []string{"PATH=/bin", "HOME=/home/a", "TERM=vt220"}) || EnvValue(env, "HOME") != "/home/a" || EnvValue(env, "X") != "" {
		t.Errorf("%q", env)
	}
}

func TestSigMaskHas(t *testing.T) {
	status := "Name:\tsystemd\nSigBlk:\t7be3c0fe28014a03\nSigCgt:\t00000000000004ec\n"
	// SigCgt 0x4ec: signals 3, 4, 6, 7, 8, 11.
	if !sigMaskHas(status, "SigCgt:", 3) || sigMaskHas(status, "SigCgt:", 15) {
		t.Error("SigCgt misread")
	}
	// systemd blocks SIGRTMIN+4 (38, bit 37) to read it from a signalfd.
	if !sigMaskHas(status, "SigBlk:", 38) || sigMaskHas(status, "SigBlk:", 65) || sigMaskHas(status, "SigQ:", 1) {
		t.Error("SigBlk misread")
	}
}
