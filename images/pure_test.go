package images

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, n := range []string{"web", "debian-12", "a.b", "x1"} {
		if err := CheckNewName(n); err != nil {
			t.Errorf("CheckNewName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", ".hidden", "a_b", "-x", "x-", "a..b", "../x", "a/b", strings.Repeat("a", 65), ".host"} {
		if CheckNewName(n) == nil {
			t.Errorf("CheckNewName(%q) accepted", n)
		}
	}
	if CheckName(".tar-cache") != nil || CheckName(".host") == nil || CheckName("a/b") == nil || CheckName("..") == nil {
		t.Error("CheckName: hidden names accepted, .host and paths refused")
	}
	if !Hidden(".x") || Hidden("x") {
		t.Error("Hidden")
	}
	for in, want := range map[string]string{
		"/x/debian-12.tar.xz":           "debian-12",
		"http://h/p/alpine_3.tgz?x=1":   "alpine-3",
		"busybox.tar":                   "busybox",
		"disk.raw":                      "disk",
		"/srv/trees/web/":               "web",
		"https://h/images/f.tar.zst#ab": "f",
	} {
		if got := NameFromPath(in); got != want {
			t.Errorf("NameFromPath(%q) = %q, want %q", in, got, want)
		}
	}
	if d := Dirs(func(string) string { return "" }); len(d) != 4 || d[0] != "/var/lib/machines" {
		t.Errorf("Dirs default = %v", d)
	}
	if d := Dirs(func(string) string { return "/tmp/m" }); len(d) != 1 || d[0] != "/tmp/m" {
		t.Errorf("Dirs env = %v", d)
	}
}

func TestWithin(t *testing.T) {
	for _, c := range []struct {
		p, dir string
		want   bool
	}{
		{"/nonexistent-x/machines", "/nonexistent-x", true},
		{"/nonexistent-x", "/nonexistent-x", true},
		{"/nonexistent-x/machines", "/nonexistent-x/machines/sub", false},
		{"/nonexistent-xy", "/nonexistent-x", false},
		{"/a/b", "/", true},
	} {
		if got := within(c.p, c.dir); got != c.want {
			t.Errorf("within(%q, %q) = %v", c.p, c.dir, got)
		}
	}
}

func TestCleanEntryName(t *testing.T) {
	good := map[string]string{"./": "", "/": "", ".": "", "./etc/passwd": "etc/passwd", "/etc/": "etc", "usr//bin/./sh": "usr/bin/sh"}
	for in, want := range good {
		got, err := CleanEntryName(in)
		if err != nil || got != want {
			t.Errorf("CleanEntryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"../etc/passwd", "a/../../x", "./..", "a/..", "x\x00y"} {
		if _, err := CleanEntryName(in); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("CleanEntryName(%q) = %v, want ErrUnsafePath", in, err)
		}
	}
}

func TestCheckSymlink(t *testing.T) {
	ok := [][2]string{{"bin", "usr/bin"}, {"etc/os-release", "../usr/lib/os-release"}, {"etc/x", "/etc/passwd"}, {"a/b/c", "../../d"}, {"a/b", "./c/../d"}}
	for _, c := range ok {
		if err := CheckSymlink(c[0], c[1]); err != nil {
			t.Errorf("CheckSymlink(%q, %q) = %v", c[0], c[1], err)
		}
	}
	bad := [][2]string{{"x", "../etc"}, {"etc/x", "../../etc/shadow"}, {"a/b", "c/../../../z"}, {"x", ""}}
	for _, c := range bad {
		if err := CheckSymlink(c[0], c[1]); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("CheckSymlink(%q, %q) = %v, want ErrUnsafePath", c[0], c[1], err)
		}
	}
}

func TestCompression(t *testing.T) {
	for name, want := range map[string]Compression{"a.tar": None, "a.tar.gz": Gzip, "A.TGZ": Gzip, "a.tar.xz": XZ, "a.txz": XZ, "a.tar.zst": Zstd, "a.tzst": Zstd, "a.tar.zstd": Zstd, "-": None} {
		if got := CompressionFromName(name); got != want {
			t.Errorf("CompressionFromName(%q) = %v, want %v", name, got, want)
		}
	}
	heads := map[string]Compression{
		"\x1f\x8b\x08\x00":         Gzip,
		"\xfd7zXZ\x00\x00":         XZ,
		"\x28\xb5\x2f\xfd\x00":     Zstd,
		"etc/\x00\x00\x00\x00\x00": None,
		"":                         None,
		"\xfd7z":                   None,
	}
	for h, want := range heads {
		if got := DetectCompression([]byte(h)); got != want {
			t.Errorf("DetectCompression(%q) = %v, want %v", h, got, want)
		}
	}
	for s, want := range map[string]Compression{"gz": Gzip, "zstd": Zstd, "xz": XZ, "none": None} {
		if got, err := ParseCompression(s); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseCompression("bzip2"); err == nil {
		t.Error("ParseCompression(bzip2) accepted")
	}
}

func TestProgressFormat(t *testing.T) {
	if got := FormatBytes(512); got != "512B" {
		t.Errorf("FormatBytes(512) = %q", got)
	}
	if got := FormatBytes(1536); got != "1.5K" {
		t.Errorf("FormatBytes(1536) = %q", got)
	}
	if got := FormatBytes(300 << 20); got != "300M" {
		t.Errorf("FormatBytes(300M) = %q", got)
	}
	line := FormatProgress("Copying", 50<<20, 100<<20, 10<<20, 60)
	if len(line) != 60 || !strings.HasPrefix(line, "Copying  50% [") || !strings.HasSuffix(line, "] 50M/100M 10M/s") {
		t.Errorf("FormatProgress half = %q (%d)", line, len(line))
	}
	if h, d := strings.Count(line, "#"), strings.Count(line, "."); h == 0 || h != d {
		t.Errorf("bar not half full: %q", line)
	}
	full := FormatProgress("X", 200, 100, 0, 40)
	if !strings.Contains(full, "100%") || strings.Contains(full, ".") {
		t.Errorf("FormatProgress over total = %q", full)
	}
	unknown := FormatProgress("Downloading", 2048, -1, 0, 80)
	if unknown != "Downloading 2.0K" {
		t.Errorf("FormatProgress unknown total = %q", unknown)
	}
	narrow := FormatProgress("Downloading a-long-name", 1, 2, 0, 20)
	if len(narrow) > 20 {
		t.Errorf("FormatProgress not fitted: %q", narrow)
	}
	var p *Progress // nil: no terminal
	p.Add(10)
	p.Done()
	var buf bytes.Buffer
	if _, err := p.Writer(&buf).Write([]byte("x")); err != nil || buf.String() != "x" || p.Enabled() {
		t.Error("nil Progress must pass data through")
	}
}

func TestSHA256SUMS(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	data := []byte("# list\n" + strings.Repeat("cd", 32) + "  other.tar\n" + sum + " *img.tar.xz\nSHA256 (bsd.tar) = " + sum + "\n")
	for _, f := range []string{"img.tar.xz", "bsd.tar"} {
		got, err := ParseSHA256SUMS(data, f)
		if err != nil || hex.EncodeToString(got) != sum {
			t.Errorf("ParseSHA256SUMS(%s) = %x, %v", f, got, err)
		}
	}
	if _, err := ParseSHA256SUMS(data, "missing.tar"); err == nil {
		t.Error("missing entry accepted")
	}
	if _, err := ParseSHA256SUMS([]byte("zz  f\n"), "f"); err == nil {
		t.Error("malformed digest accepted")
	}
	u, _ := url.Parse("http://127.0.0.1:80/a/b/img.tar.gz?x=1")
	if got := SumsURL(u).String(); got != "http://127.0.0.1:80/a/b/SHA256SUMS" {
		t.Errorf("SumsURL = %s", got)
	}
	for _, v := range []string{"", "no", "checksum", "auto"} {
		if _, err := ParseVerify(v); err != nil {
			t.Errorf("ParseVerify(%q) = %v", v, err)
		}
	}
	if _, err := ParseVerify("signature"); err == nil {
		t.Error("signature accepted")
	}
}

func TestOSRelease(t *testing.T) {
	m := ParseOSRelease("# c\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n")
	if OSName(m) != "Debian GNU/Linux 12 (bookworm)" || m["VERSION_ID"] != "12" || m["ID"] != "debian" {
		t.Errorf("ParseOSRelease = %v", m)
	}
	if OSName(map[string]string{"ID": "alpine"}) != "alpine" {
		t.Error("OSName falls back to ID")
	}
}
