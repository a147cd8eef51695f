package config

import (
	"strings"
	"testing"
)

// Every value a completion offers is one the parser takes.
func TestFlagDocValuesParse(t *testing.T) {
	for _, fd := range FlagDocs() {
		if fd.Long == "" || len(fd.Values) == 0 || !fd.Supported {
			continue
		}
		for _, v := range fd.Values {
			args := []string{"--" + fd.Long + "=" + v, "-D", "/srv/x"}
			if fd.Long == "ambient-capability" {
				args = append(args, "--capability="+v)
			}
			if fd.Long == "private-users-ownership" {
				args = append(args, "--private-users=pick")
			}
			if _, err := parseArgs(args, testEnv(t)); err != nil {
				t.Errorf("--%s=%s is offered but refused: %v", fd.Long, v, err)
			}
		}
	}
}

func TestFlagDocs(t *testing.T) {
	docs := FlagDocs()
	if len(docs) != len(flagTable) {
		t.Fatalf("%d docs for %d flags", len(docs), len(flagTable))
	}
	byLong := map[string]FlagDoc{}
	for _, fd := range docs {
		byLong[fd.Long] = fd
	}
	if got := byLong["console"].Values; strings.Join(got, ",") != "interactive,read-only,passive,pipe,autopipe" {
		t.Errorf("--console values %q", got)
	}
	if byLong["machine"].Complete != CompleteMachine || byLong["directory"].Complete != CompleteDir || byLong["bind"].Complete != CompleteFile {
		t.Errorf("completion hints: machine %q directory %q bind %q", byLong["machine"].Complete, byLong["directory"].Complete, byLong["bind"].Complete)
	}
	if !byLong["image"].Supported || !byLong["help"].Supported || !byLong["boot"].Supported {
		t.Error("Supported is not set from the table")
	}
	if byLong["boot"].Values != nil || byLong["boot"].Arg != ArgNone {
		t.Error("an option without a value has values")
	}
}

// Every key of a .nspawn file is documented, with an option that exists.
func TestSettingDocs(t *testing.T) {
	longs := map[string]bool{}
	for _, d := range flagTable {
		longs[d.long] = true
	}
	for k := range settingKeys {
		if _, ok := settingDocs[k]; !ok && !strings.Contains(k, ".Limit") {
			t.Errorf("%s: no entry in settingDocs (docs.go)", k)
		}
	}
	for k, d := range settingDocs {
		if _, ok := settingKeys[k]; !ok {
			t.Errorf("settingDocs has %s, which is no key", k)
		}
		if d.flag != "" && !longs[d.flag] {
			t.Errorf("%s: no option --%s", k, d.flag)
		}
	}
	docs := SettingDocs()
	if len(docs) != len(settingKeys) {
		t.Fatalf("%d docs for %d keys", len(docs), len(settingKeys))
	}
	for _, sd := range docs {
		if sd.Help == "" {
			t.Errorf("%s.%s has no help", sd.Section, sd.Key)
		}
		if sectionIndex(sd.Section) == len(SettingSections) {
			t.Errorf("%s.%s: unknown section", sd.Section, sd.Key)
		}
	}
	if docs[0].Section != "Exec" || docs[len(docs)-1].Section != "Network" {
		t.Errorf("sections out of order: %s first, %s last", docs[0].Section, docs[len(docs)-1].Section)
	}
}
