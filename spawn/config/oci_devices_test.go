package config

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOCIDevicesAndBlockIO(t *testing.T) {
	const pre = `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"resources": `
	ok := []struct {
		json string
		warn string // "" for none
	}{
		{`{"devices": [{"allow": false, "access": "rwm"}]}`, ""},
		{`{"devices": [{"allow": true, "access": "rwm"}]}`, ""},
		{`{"devices": [{"allow": false, "type": "c", "major": 1, "access": "rwm"}]}`, "linux.resources.devices[0]: deny entries other than the catch-all one are not supported, ignoring"},
		{`{"devices": [{"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}]}`, ""},
		{`{"devices": [{"allow": true, "type": "b", "access": "r"}]}`, ""},
		{`{"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3}]}`, "linux.resources.devices[0]: an allow entry with no access has no effect"},
		{`{"blockIO": {}}`, ""},
		{`{"blockIO": {"leafWeight": 10}}`, "linux.resources.blockIO.leafWeight: not supported, ignoring"},
		{`{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}], "throttleReadBpsDevice": []}}`, "linux.resources.blockIO.weightDevice[0].leafWeight: not supported, ignoring"},
	}
	for _, c := range ok {
		b, err := ParseOCIConfig([]byte(pre+c.json+`}}`), "/b")
		if err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		w := strings.Join(b.Warnings, "\n")
		if c.warn == "" && w != "" || !strings.Contains(w, c.warn) {
			t.Errorf("%s: warnings %q, want %q", c.json, w, c.warn)
		}
		if len(b.Properties) != 0 {
			t.Errorf("%s: properties %q", c.json, b.Properties)
		}
	}
	// Allow entries are rules of the device policy.
	b, err := ParseOCIConfig([]byte(pre+`{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}, {"allow": true, "type": "b", "access": "r"}, {"allow": true, "type": "c", "major": 4, "access": "rwm"}]}}}`), "/b")
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceAllow{{'c', 10, 200, "rw"}, {'b', -1, -1, "r"}, {'c', 4, -1, "rwm"}}
	if fmt.Sprint(b.DeviceAllow) != fmt.Sprint(want) {
		t.Errorf("DeviceAllow = %v, want %v", b.DeviceAllow, want)
	}
	bad := []struct{ json, want string }{
		{`{"devices": [{"type": "c"}]}`, "linux.resources.devices[0].allow: missing"},
		{`{"devices": [{"allow": true, "type": "a", "access": "rwm"}]}`, `linux.resources.devices[0].type: device type "a" is not supported`},
		{`{"devices": [{"allow": true, "type": "c", "access": "rwx"}]}`, `linux.resources.devices[0].access: unknown device access character 'x'`},
		{`{"devices": [{"allow": true, "type": "c", "minor": 3, "access": "rw"}]}`, "linux.resources.devices[0]: an allow entry with a minor but no major"},
		{`{"devices": [{"allow": true, "major": 1, "access": "rw"}]}`, "linux.resources.devices[0]: an allow entry with a major but no device type"},
		{`{"devices": [{"allow": true, "access": "rw"}]}`, "linux.resources.devices[0]: an allow entry with no device type must allow all access"},
		{`{"devices": [{"allow": true, "type": "c", "major": 4096, "access": "rw"}]}`, "linux.resources.devices[0].major: device major 4096 is out of range 0..4095"},
		{`{"devices": [{"allow": true, "type": "c", "major": 1, "minor": 1048576, "access": "rw"}]}`, "linux.resources.devices[0].minor: device minor 1048576 is out of range"},
		{`{"devices": [{"allow": true, "type": "c", "access": "rw", "path": "/dev/x"}]}`, "linux.resources.devices[0].path: unknown field"},
		{`{"blockIO": {"weight": 500}}`, "linux.resources.blockIO.weight: not supported by netspawn: it has no I/O resource control (systemd-nspawn sets BlockIOWeight="},
		{`{"blockIO": {"weight": 5}}`, "linux.resources.blockIO.weight: 5 is out of range 10..1000"},
		{`{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}}`, "linux.resources.blockIO.weightDevice[0]: not supported by netspawn: it has no I/O resource control (systemd-nspawn sets BlockIODeviceWeight="},
		{`{"blockIO": {"weightDevice": [{"minor": 0, "weight": 100}]}}`, "linux.resources.blockIO.weightDevice[0].major: missing"},
		{`{"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}}`, "linux.resources.blockIO.throttleWriteIOPSDevice[0]: not supported by netspawn: it has no I/O resource control (systemd-nspawn sets IOWriteIOPSMax=/dev/block/8:16="},
		{`{"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 16}]}}`, "linux.resources.blockIO.throttleReadBpsDevice[0].rate: missing"},
		{`{"blockIO": {"throttle": []}}`, "linux.resources.blockIO.throttle: unknown field"},
	}
	for _, c := range bad {
		_, err := ParseOCIConfig([]byte(pre+c.json+`}}`), "/b")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.json, err, c.want)
		}
	}
}

func TestParseOCIDeviceNodes(t *testing.T) {
	const pre = `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"devices": `
	b, err := ParseOCIConfig([]byte(pre+`[
		{"type": "c", "path": "/dev/null", "major": 1, "minor": 3},
		{"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3, "fileMode": 438},
		{"type": "b", "path": "/dev/ram3", "major": 1, "minor": 3},
		{"type": "u", "path": "/dev/net/tun", "major": 10, "minor": 200, "fileMode": 438, "uid": 0, "gid": 5},
		{"type": "p", "path": "/dev/fifo"}
	]}}`), "/b")
	if err != nil {
		t.Fatal(err)
	}
	zero, five := uint32(0), uint32(5)
	eq(t, b.Devices, []DeviceNode{
		{Path: "/dev/ram3", Type: 'b', Major: 1, Minor: 3, Mode: 0o644},
		{Path: "/dev/net/tun", Type: 'c', Major: 10, Minor: 200, Mode: 0o666, UID: &zero, GID: &five},
		{Path: "/dev/fifo", Type: 'p', Mode: 0o644},
	})
	eq(t, b.Devices[0].FileType(), uint32(unix.S_IFBLK))
	eq(t, b.Devices[2].FileType(), uint32(unix.S_IFIFO))
	for _, c := range []struct{ json, want string }{
		{`[{"path": "/dev/x"}]`, "linux.devices[0].type: missing"},
		{`[{"type": "s", "path": "/dev/x"}]`, `linux.devices[0].type: unknown device type "s"`},
		{`[{"type": "p"}]`, "linux.devices[0].path: missing"},
		{`[{"type": "p", "path": "dev/x"}]`, `linux.devices[0].path: path "dev/x" is not absolute`},
		{`[{"type": "b", "path": "/dev/x", "major": 8}]`, `linux.devices[0]: a device node of type "b" needs major and minor`},
		{`[{"type": "c", "path": "/dev/x", "major": 5000, "minor": 1}]`, "linux.devices[0].major: device major 5000 is out of range"},
		{`[{"type": "p", "path": "/dev/x", "fileMode": 65535}]`, "linux.devices[0].fileMode: 0177777 is out of range"},
		{`[{"type": "p", "path": "/dev/x", "uid": -1}]`, "linux.devices[0].uid: must not be negative"},
		{`[{"type": "p", "path": "/dev/x"}, {"type": "p", "path": "/dev/x/"}]`, "linux.devices[1].path: /dev/x is listed twice"},
		{`[{"type": "p", "path": "/dev/x", "access": "rwm"}]`, "linux.devices[0].access: unknown field"},
	} {
		_, err := ParseOCIConfig([]byte(pre+c.json+`}}`), "/b")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.json, err, c.want)
		}
	}
}
