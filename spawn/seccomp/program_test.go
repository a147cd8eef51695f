package seccomp

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProgramJSONRoundTrip(t *testing.T) {
	prog, err := Default(0).Compile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	in := struct {
		P Program `json:"p,omitempty"`
	}{P: prog}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > len(prog)*12 {
		t.Errorf("%d instructions took %d bytes of JSON", len(prog), len(b))
	}
	var out struct {
		P Program `json:"p,omitempty"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]unix.SockFilter(out.P), prog) {
		t.Error("the program changed on its way through JSON")
	}
	// Empty stays absent.
	b, _ = json.Marshal(&struct {
		P Program `json:"p,omitempty"`
	}{})
	if string(b) != "{}" {
		t.Errorf("empty program: %s", b)
	}
}

func TestProgramJSONBadInput(t *testing.T) {
	for in, want := range map[string]string{
		`12`:     "cannot unmarshal number",
		`"!!"`:   "illegal base64",
		`"AAAA"`: "not a whole number",
	} {
		var p Program
		err := json.Unmarshal([]byte(in), &p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20s: got %v, want an error with %q", in, err, want)
		}
	}
	// Longer than the kernel takes.
	long := make(Program, maxInsns+1)
	b, _ := json.Marshal(long)
	var p Program
	if err := json.Unmarshal(b, &p); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over-long program: %v", err)
	}
}
