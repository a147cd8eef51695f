package neightable

import (
	"testing"
	"time"
)

const sample = `entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000400 0000bcf6 0000bc3e 00000007   001d7090 000088bd 000002d6   00000000         00000000         00000439         00000c5b       00000000            00000bed
00000400 0000b3e8 0000b4a0 00000001   0019b5ca 00007460 000002c0   00000000         00000000         00000000         00000bec       00000000            00000b81`

func TestParse(t *testing.T) {
	st, err := Parse(sample)
	if err != nil || st.Entries != 1024 || st.Fulls != 0xbed+0xb81 {
		t.Fatalf("parsed %+v, %v", st, err)
	}
	for _, bad := range []string{"", "entries table_fulls", "entries table_fulls\nzz 1", "entries x\n1 2", "entries table_fulls\n1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestWatch(t *testing.T) {
	w := Watch{Quiet: time.Minute}
	arp := Tables[0]
	t0 := time.Unix(1000, 0)
	if n := w.Note(arp, Stat{Fulls: 50}, t0); n != 0 {
		t.Fatalf("first reading warned: %d", n)
	}
	if n := w.Note(arp, Stat{Fulls: 50}, t0.Add(10*time.Second)); n != 0 {
		t.Fatalf("no change warned: %d", n)
	}
	if n := w.Note(arp, Stat{Fulls: 53}, t0.Add(20*time.Second)); n != 3 {
		t.Fatalf("overflow: %d, want 3", n)
	}
	if n := w.Note(arp, Stat{Fulls: 60}, t0.Add(30*time.Second)); n != 0 {
		t.Fatalf("warned again within a minute: %d", n)
	}
	if n := w.Note(arp, Stat{Fulls: 61}, t0.Add(90*time.Second)); n != 8 {
		t.Fatalf("after the quiet minute: %d, want 8 (7 held over + 1)", n)
	}
	if n := w.Note(Tables[1], Stat{Fulls: 5}, t0.Add(90*time.Second)); n != 0 {
		t.Fatalf("NDISC's first reading warned: %d", n)
	}
}
