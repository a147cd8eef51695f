package mandoc

import (
	"bytes"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"--bind":       `\-\-bind`,
		`C:\path`:      `C:\epath`,
		".hidden":      `\&.hidden`,
		"'quoted'":     `\&'quoted'`,
		"café":         `caf\[u00E9]`,
		"a\nb\tc\x01d": "a b cd",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	p := &Page{Name: "demo", Section: "1", Date: "2026-12-07", Source: "demo 1", Manual: "demo manual", Summary: "show a page",
		Synopsis: [][]string{{"demo", "[--console=MODE]", "NAME..."}},
		Sections: []Section{{Title: "Options", Blocks: []Block{
			{Sub: "General"},
			{Tag: []Span{B("--console"), R("="), I("MODE")}, Text: "Set `--console=pipe`.\n\n.Not a request"},
			{Indent: true, Tag: []Span{B("-x")}, Text: "inner"},
			{Text: "Run:", Code: []string{"demo --console=pipe", ".dot"}},
		}}}}
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		`.TH "DEMO" "1" "2026\-12\-07" "demo 1" "demo manual"`,
		`demo \- show a page`,
		`\fB\%demo\fR [\fB\%\-\-console\fR=\fI\%MODE\fR] \fI\%NAME...\fR`,
		".SH \"OPTIONS\"\n.SS \"General\"\n.TP\n\\fB\\%\\-\\-console\\fR=\\fI\\%MODE\\fR\nSet \\fB\\%\\-\\-console=pipe\\fR\\&.\n.PP\n\\&.Not a request\n",
		".RS\n.TP\n\\fB\\%\\-x\\fR\ninner\n.RE\n",
		".nf\n\\&demo \\-\\-console=pipe\n\\&\\&.dot\n.fi\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q:\n%s", want, got)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "'") {
			t.Errorf("line starts with a quote: %q", l)
		}
	}
}
