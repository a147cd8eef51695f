package naming

import "testing"

// Expected values were produced by systemd-nspawn 252 (-n, --register=no)
// inside a throwaway network namespace on a host whose machine id is
// 3d1219c7c4c5404aaa1f6d2a48adfda4.
const testMachineID = "3d1219c7c4c5404aaa1f6d2a48adfda4"

func TestAgainstNspawn(t *testing.T) {
	id, err := ParseMachineID(testMachineID + "\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		machine, link, alt, hostMAC, contMAC string
	}{
		{"web", "ve-web", "", "de:33:ab:0b:45:44", "fe:38:c6:95:1d:f9"},
		{"averyveryverylongname", "ve-averyverUARo", "ve-averyveryverylongname", "9a:aa:89:f2:51:a8", "46:77:d0:b5:19:ff"},
		{"rosa-2019.1-samba-server1", "ve-rosa-201_SrW", "ve-rosa-2019.1-samba-server1", "6e:55:a7:2e:f3:fc", "ca:91:52:0b:40:7e"},
	} {
		l := HostLinkName(PrefixVeth, c.machine)
		if l.Name != c.link || l.AltName != c.alt {
			t.Errorf("%s: link %+v, want %s (alt %q)", c.machine, l, c.link, c.alt)
		}
		h, ct := VethMACs(id, c.machine)
		if h.String() != c.hostMAC || ct.String() != c.contMAC {
			t.Errorf("%s: MACs %s/%s, want %s/%s", c.machine, h, ct, c.hostMAC, c.contMAC)
		}
	}
}

func TestShorten(t *testing.T) {
	for _, n := range []string{"", "ve-a", "ve-123456789012"} {
		if s, cut := ShortenIfName(n); s != n || cut {
			t.Errorf("ShortenIfName(%q) = %q, %v", n, s, cut)
		}
	}
	s, cut := ShortenIfName("ve-1234567890123")
	if !cut || len(s) != MaxIfNameLen || s[:11] != "ve-12345678" {
		t.Errorf("16-byte name: %q %v", s, cut)
	}
	if a, _ := ShortenIfName("vb-rosa-2019.1-samba-server1"); a[:11] != "vb-rosa-201" {
		t.Errorf("bridge name %q", a)
	}
}

func TestMACBits(t *testing.T) {
	var id MachineID
	for i := range 200 {
		m := MAC(id, string(rune('a'+i%26))+"x", HostKey, uint64(i))
		if m[0]&1 != 0 || m[0]&2 == 0 || len(m) != 6 {
			t.Fatalf("bad MAC %s", m)
		}
	}
	h0, c0 := VethExtraMACs(id, "m", 0)
	h1, c1 := VethExtraMACs(id, "m", 1)
	if h0.String() == h1.String() || c0.String() == c1.String() || h0.String() == c0.String() {
		t.Errorf("extra MACs not distinct: %s %s %s %s", h0, h1, c0, c1)
	}
}

func TestZoneAndValid(t *testing.T) {
	if n, err := ZoneBridgeName("blue"); err != nil || n != "vz-blue" {
		t.Errorf("zone blue: %q %v", n, err)
	}
	if _, err := ZoneBridgeName("abcdefghijklm"); err == nil {
		t.Error("13-char zone accepted")
	}
	if _, err := ParseMachineID("xyz"); err == nil {
		t.Error("bad machine id accepted")
	}
	if err := ValidIfName("a/b"); err == nil {
		t.Error("slash accepted")
	}
}
