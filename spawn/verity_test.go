package spawn

import (
	"strings"
	"testing"
)

func TestVerityDeviceName(t *testing.T) {
	got := verityDeviceName("web-1", []byte{0xde, 0xad, 0xbe, 0xef})
	if got != "netspawn-verity-web-1-deadbeef" {
		t.Fatal(got)
	}
	long := verityDeviceName(strings.Repeat("m", 200)+"/x y", []byte{1, 2, 3, 4})
	if len(long) > 127 || strings.ContainsAny(long, "/ ") || !strings.HasPrefix(long, "netspawn-verity-") {
		t.Fatalf("%q", long)
	}
	if got := verityDeviceName("a/b c", []byte{0, 0, 0, 1}); got != "netspawn-verity-a_b_c-00000001" {
		t.Fatal(got)
	}
}

func TestVerityArgs(t *testing.T) {
	got := strings.Join(verityOpenArgs("/dev/loop1", "netspawn-verity-m-01", "/dev/loop2", "abcd", ""), " ")
	if got != "open /dev/loop1 netspawn-verity-m-01 /dev/loop2 abcd" {
		t.Fatal(got)
	}
	got = strings.Join(verityOpenArgs("/dev/loop1", "n", "/dev/loop2", "abcd", "/dev/fd/3"), " ")
	if got != "open /dev/loop1 n /dev/loop2 abcd --root-hash-signature=/dev/fd/3" {
		t.Fatal(got)
	}
	if got := strings.Join(verityCloseArgs("n", true), " "); got != "close --deferred n" {
		t.Fatal(got)
	}
	if got := strings.Join(verityCloseArgs("n", false), " "); got != "close n" {
		t.Fatal(got)
	}
}

func TestVerityCorrupted(t *testing.T) {
	ok := "/dev/mapper/n is active and is in use.\n  type:        VERITY\n  status:      verified\n  hash type:   1\n"
	bad := strings.Replace(ok, "verified", "corrupted", 1)
	if verityCorrupted(ok) || !verityCorrupted(bad) || verityCorrupted("") {
		t.Fatal("verityCorrupted")
	}
}
