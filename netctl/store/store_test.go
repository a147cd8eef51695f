package store

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "state.json")
	var m map[string]int
	if ok, err := ReadJSON(p, &m); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	if err := WriteJSON(p, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(p, map[string]int{"b": 2}); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSONNoSync(p+"2", map[string]int{"b": 2}); err != nil {
		t.Fatal(err)
	}
	if err := Syncfs(dir); err != nil {
		t.Fatal(err)
	}
	if ok, err := ReadJSON(p+"2", &m); !ok || err != nil || m["b"] != 2 {
		t.Fatalf("no-sync write: %v %v %v", m, ok, err)
	}
	os.Remove(p + "2")
	if ok, err := ReadJSON(p, &m); !ok || err != nil || m["b"] != 2 || len(m) != 1 {
		t.Fatalf("read back %v %v %v", m, ok, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(p, &m); err == nil {
		t.Fatal("corrupt file accepted")
	}
}
