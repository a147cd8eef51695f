package config

import (
	"strings"
	"testing"
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
		{`{"devices": [{"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}]}`, "linux.resources.devices[0]: netspawn sets no device access policy"},
		{`{"devices": [{"allow": true, "type": "b", "access": "r"}]}`, "linux.resources.devices[0]: netspawn sets no device access policy"},
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
