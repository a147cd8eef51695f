package journald

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parse decodes a native-protocol datagram into its fields (a field may
// repeat).
func parse(b []byte) (map[string][]string, error) {
	out := map[string][]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("field without a newline")
		}
		if eq := bytes.IndexByte(b[:nl], '='); eq >= 0 {
			out[string(b[:eq])] = append(out[string(b[:eq])], string(b[eq+1:nl]))
			b = b[nl+1:]
			continue
		}
		key := string(b[:nl])
		b = b[nl+1:]
		if len(b) < 8 {
			return nil, fmt.Errorf("%s: no length", key)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			return nil, fmt.Errorf("%s: bad length %d", key, n)
		}
		out[key] = append(out[key], string(b[:n]))
		b = b[n+1:]
	}
	return out, nil
}

func TestAppendField(t *testing.T) {
	if got := string(AppendField(nil, "MESSAGE", "hello world")); got != "MESSAGE=hello world\n" {
		t.Errorf("text form: %q", got)
	}
	got := AppendField([]byte("A=b\n"), "MESSAGE", "two\nlines")
	want := "A=b\nMESSAGE\n\x09\x00\x00\x00\x00\x00\x00\x00two\nlines\n"
	if string(got) != want {
		t.Errorf("binary form: %q, want %q", got, want)
	}
	if string(AppendField(nil, "EMPTY", "")) != "EMPTY=\n" {
		t.Error("empty value")
	}
	f, err := parse(got)
	if err != nil || f["MESSAGE"][0] != "two\nlines" || f["A"][0] != "b" {
		t.Errorf("round trip: %v %v", f, err)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"err":                   "ERR",
		"machine":               "MACHINE",
		"pool_start":            "POOL_START",
		"req.id":                "REQ_ID",
		"dhcp-link":             "DHCP_LINK",
		"_SYSTEMD_UNIT":         "SYSTEMD_UNIT",
		"9lives":                "ATTR_9LIVES",
		"":                      "ATTR",
		"___":                   "ATTR",
		"msg":                   "MSG",
		"message":               "ATTR_MESSAGE",
		"priority":              "ATTR_PRIORITY",
		"syslog_identifier":     "ATTR_SYSLOG_IDENTIFIER",
		"ünïcode":               "N__CODE",
		strings.Repeat("a", 70): strings.Repeat("A", 64),
	} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPriority(t *testing.T) {
	for l, p := range map[slog.Level]int{slog.LevelDebug: 7, slog.LevelDebug + 2: 7, slog.LevelInfo: 6,
		slog.LevelInfo + 2: 5, slog.LevelWarn: 4, slog.LevelError: 3, slog.LevelError + 4: 3} {
		if got := Priority(l); got != p {
			t.Errorf("Priority(%v) = %d, want %d", l, got, p)
		}
	}
}

func TestStreamMatches(t *testing.T) {
	for _, c := range []struct {
		env      string
		dev, ino uint64
		want     bool
	}{
		{"8:1234", 8, 1234, true},
		{"8:1234", 8, 1235, false},
		{"9:1234", 8, 1234, false},
		{"", 8, 1234, false},
		{"8", 8, 1234, false},
		{"x:1234", 8, 1234, false},
		{"8:1234:5", 8, 1234, false},
	} {
		if got := streamMatches(c.env, c.dev, c.ino); got != c.want {
			t.Errorf("streamMatches(%q, %d, %d) = %v", c.env, c.dev, c.ino, got)
		}
	}
}

// fakeJournal is a unixgram socket standing in for journald's.
func fakeJournal(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	old := socketPath
	socketPath = path
	t.Cleanup(func() { socketPath = old })
	return c
}

func receive(t *testing.T, c *net.UnixConn) map[string][]string {
	t.Helper()
	buf := make([]byte, 1<<20)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parse(buf[:n])
	if err != nil {
		t.Fatalf("datagram %q: %v", buf[:n], err)
	}
	return f
}

func one(t *testing.T, f map[string][]string, key, want string) {
	t.Helper()
	if v := f[key]; len(v) != 1 || v[0] != want {
		t.Errorf("%s = %q, want [%q] (all: %v)", key, v, want, f)
	}
}

func TestHandlerSendsFields(t *testing.T) {
	j := fakeJournal(t)
	h, err := New(Options{Identifier: "netspawnd", Level: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := slog.New(h)
	log.With("machine", "web").WithGroup("dhcp").Warn("lease\nlost", "link", "ve-web", "n", 3,
		slog.Group("addr", "v4", "10.0.0.2"), "err", errors.New("boom"), "message", "attr")
	f := receive(t, j)
	one(t, f, "MESSAGE", "lease\nlost")
	one(t, f, "PRIORITY", "4")
	one(t, f, "SYSLOG_IDENTIFIER", "netspawnd")
	one(t, f, "MACHINE", "web")
	one(t, f, "DHCP_LINK", "ve-web")
	one(t, f, "DHCP_N", "3")
	one(t, f, "DHCP_ADDR_V4", "10.0.0.2")
	one(t, f, "DHCP_ERR", "boom")
	one(t, f, "DHCP_MESSAGE", "attr")
	if v := f["CODE_FILE"]; len(v) != 1 || !strings.HasSuffix(v[0], "journald_test.go") {
		t.Errorf("CODE_FILE = %q", v)
	}
	if v := f["CODE_FUNC"]; len(v) != 1 || !strings.Contains(v[0], "TestHandlerSendsFields") {
		t.Errorf("CODE_FUNC = %q", v)
	}
	if len(f["CODE_LINE"]) != 1 {
		t.Errorf("CODE_LINE = %q", f["CODE_LINE"])
	}

	log.Debug("quiet")
	one(t, receive(t, j), "PRIORITY", "7")
}

func TestHandlerLevel(t *testing.T) {
	j := fakeJournal(t)
	h, err := New(Options{NoSource: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := slog.New(h)
	log.Debug("not sent")
	log.Info("sent")
	f := receive(t, j)
	one(t, f, "MESSAGE", "sent")
	if _, ok := f["CODE_FILE"]; ok {
		t.Error("CODE_FILE with NoSource")
	}
	if _, ok := f["SYSLOG_IDENTIFIER"]; ok {
		t.Error("SYSLOG_IDENTIFIER without an identifier")
	}
}

// When the journal is gone, records go to the fallback handler, with
// the attributes and groups given before.
func TestHandlerFallsBack(t *testing.T) {
	j := fakeJournal(t)
	var buf bytes.Buffer
	h, err := New(Options{Fallback: slog.NewTextHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	j.Close()
	if err := os.Remove(socketPath); err != nil {
		t.Fatal(err)
	}
	slog.New(h).With("machine", "web").WithGroup("g").Info("journal gone", "k", "v")
	out := buf.String()
	for _, s := range []string{"journal gone", "machine=web", "g.k=v"} {
		if !strings.Contains(out, s) {
			t.Errorf("fallback output %q lacks %q", out, s)
		}
	}
}

func TestNewWithoutJournal(t *testing.T) {
	old := socketPath
	socketPath = filepath.Join(t.TempDir(), "none")
	defer func() { socketPath = old }()
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a journal socket succeeded")
	}
}

// A record too large for one datagram goes to the fallback.
func TestHandlerTooLarge(t *testing.T) {
	fakeJournal(t)
	var buf bytes.Buffer
	h, err := New(Options{Fallback: slog.NewTextHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	slog.New(h).Info("big", "blob", strings.Repeat("x", 4<<20))
	if !strings.Contains(buf.String(), "journal_error") {
		t.Errorf("a 4 MiB record did not fall back: %.200s", buf.String())
	}
}

func TestUnderJournal(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !UnderJournal() {
		t.Error("stderr named by JOURNAL_STREAM is not the journal's")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if UnderJournal() {
		t.Error("another stream taken for stderr")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if UnderJournal() {
		t.Error("no JOURNAL_STREAM, yet under the journal")
	}
}
