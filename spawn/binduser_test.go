package spawn

import (
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestBindUserPlan(t *testing.T) {
	alice := hostAccount{name: "alice", uid: 1000, gid: 1000, home: "/home/alice", groupName: "alice", hashed: "$6$salt$hash"}
	bob := hostAccount{name: "bob", uid: 1001, gid: 1001, home: "/home/bob", groupName: "bob"}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\nsvc:x:60514:60514::/:/bin/false\n")
	group := []byte("root:x:0:\nother:x:60515:\n")
	got, err := bindUserPlan([]hostAccount{alice, bob}, 524288, 65536, passwd, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].UID != 60516 || got[1].UID != 60517 {
		t.Fatalf("UIDs: %+v", got)
	}
	if got[0].UserJSON != `{"userName":"alice","uid":60516,"gid":60516,"homeDirectory":"/run/host/home/alice","service":"io.systemd.NSpawn"}`+"\n" {
		t.Errorf("user record %s", got[0].UserJSON)
	}
	if got[0].GroupJSON != `{"groupName":"alice","gid":60516,"service":"io.systemd.NSpawn"}`+"\n" {
		t.Errorf("group record %s", got[0].GroupJSON)
	}
	if got[0].PrivJSON != `{"privileged":{"hashedPassword":["$6$salt$hash"]}}`+"\n" || got[1].PrivJSON != "" {
		t.Errorf("privileged records %q %q", got[0].PrivJSON, got[1].PrivJSON)
	}
	if strings.Contains(got[0].UserJSON, "hash") {
		t.Error("the hashed password is in the public record")
	}

	for _, tt := range []struct {
		a      hostAccount
		passwd string
		group  string
		err    string
	}{
		{hostAccount{name: "root", groupName: "root"}, "", "", "mapping the 'root' user is not supported"},
		{hostAccount{name: "nobody", uid: 65534, gid: 65534, groupName: "nogroup"}, "", "", "mapping the 'nobody' user is not supported"},
		{hostAccount{name: "inrange", uid: 524300, gid: 1000, groupName: "inrange"}, "", "", "already in the container's UID range"},
		{hostAccount{name: "grange", uid: 1000, gid: 524300, groupName: "grange"}, "", "", "already in the container's GID range"},
		{hostAccount{name: "shared", uid: 1000, gid: 100, groupName: "users"}, "", "", "without a private group"},
		{alice, "alice:x:1000:1000::/home/alice:/bin/sh\n", "", "the user 'alice' already exists in the container"},
		{alice, "", "alice:x:1000:\n", "the group 'alice' already exists in the container"},
	} {
		_, err := bindUserPlan([]hostAccount{tt.a}, 524288, 65536, []byte(tt.passwd), []byte(tt.group))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want %q", tt.a.name, err, tt.err)
		}
	}
	// No free UID.
	var full strings.Builder
	for id := bindUserUIDMin; id <= bindUserUIDMax; id++ {
		full.WriteString("u" + strconv.Itoa(id) + ":x:" + strconv.Itoa(id) + ":0::/:/bin/sh\n")
	}
	if _, err := bindUserPlan([]hostAccount{alice}, 524288, 65536, []byte(full.String()), nil); err == nil || !strings.Contains(err.Error(), "no free UID") {
		t.Errorf("full range: %v", err)
	}
}

func TestUserNSMaps(t *testing.T) {
	users := []boundUser{{UID: 60515, HostUID: 1001, HostGID: 2001}, {UID: 60514, HostUID: 1000, HostGID: 2000}}
	want := []syscall.SysProcIDMap{
		{ContainerID: 0, HostID: 524288, Size: 60514},
		{ContainerID: 60514, HostID: 1000, Size: 1},
		{ContainerID: 60515, HostID: 1001, Size: 1},
		{ContainerID: 60516, HostID: 524288 + 60516, Size: 65536 - 60516},
	}
	if got := userNSMaps(524288, 65536, users, false); !reflect.DeepEqual(got, want) {
		t.Errorf("uid map %v, want %v", got, want)
	}
	if got := userNSMaps(524288, 65536, users, true); got[1].HostID != 2000 || got[2].HostID != 2001 {
		t.Errorf("gid map %v", got)
	}
	if got := userNSMaps(524288, 65536, nil, false); !reflect.DeepEqual(got, []syscall.SysProcIDMap{{ContainerID: 0, HostID: 524288, Size: 65536}}) {
		t.Errorf("no bound users: %v", got)
	}
}

func TestShadowHash(t *testing.T) {
	sh := []byte("root:*:19000:0:99999:7:::\nalice:$y$j9T$abc:19000::::::\nlocked:!$6$x:1::::::\n")
	if got := shadowHash(sh, "alice"); got != "$y$j9T$abc" {
		t.Errorf("alice: %q", got)
	}
	for _, n := range []string{"root", "locked", "missing"} {
		if got := shadowHash(sh, n); got != "" {
			t.Errorf("%s: %q", n, got)
		}
	}
}
