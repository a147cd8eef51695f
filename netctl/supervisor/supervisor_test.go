package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
)

func TestEnableDisable(t *testing.T) {
	images := t.TempDir()
	s := &Supervisor{StateDir: t.TempDir(), ImagesDir: images}
	for _, n := range []string{"web", "db"} {
		if err := os.Mkdir(filepath.Join(images, n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := s.Enable(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Enabled(); !reflect.DeepEqual(got, []string{"db", "web"}) {
		t.Errorf("Enabled = %v", got)
	}
	var ae *api.Error
	if err := s.Enable("nothere"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("enabling a missing image: %v", err)
	}
	if err := s.Enable("../etc"); !errors.As(err, &ae) || ae.Code != api.CodeInvalid {
		t.Errorf("enabling a bad name: %v", err)
	}
	if err := s.Disable("web"); err != nil {
		t.Fatal(err)
	}
	if err := s.Disable("web"); err != nil {
		t.Errorf("disabling twice: %v", err)
	}
	if got := s.Enabled(); !reflect.DeepEqual(got, []string{"db"}) {
		t.Errorf("Enabled = %v", got)
	}
}

func TestLastLine(t *testing.T) {
	log := "Welcome\nnetspawn: error: no init found\n-- netspawnd: netspawn exited: exit status 1\n"
	if got := lastLine(log); got != "netspawn: error: no init found" {
		t.Errorf("lastLine = %q", got)
	}
	if got := lastLine("-- netspawnd: only marks\n"); got != "-- netspawnd: only marks" {
		t.Errorf("lastLine = %q", got)
	}
}
