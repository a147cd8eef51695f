package machine

import (
	"reflect"
	"testing"
)

func TestProcessTree(t *testing.T) {
	got := ProcessTree([]Process{{PID: 10, PPID: 1, Command: "init"}, {PID: 12, PPID: 10, Command: "b"}, {PID: 11, PPID: 10, Command: "a"}, {PID: 13, PPID: 11, Command: "c"}})
	want := []string{"10 init", "├─11 a", "│ └─13 c", "└─12 b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
