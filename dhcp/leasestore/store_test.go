package leasestore

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netspawn/netspawn/dhcp/lease"
)

func lz(i int, st lease.State) lease.Lease {
	return lease.Lease{
		Link: "ve-a", IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
		MAC:      net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)},
		Hostname: "h \"x\"", Expiry: time.Unix(1700000000, int64(i)), State: st,
	}
}

func TestReplayAfterAbandon(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	withID := lz(3, lease.Bound)
	withID.ClientID = []byte{1, 2, 3}
	ch := []lease.Change{{Lease: lz(1, lease.Bound)}, {Lease: lz(2, lease.Bound)}, {Lease: withID}, {Lease: lz(4, lease.Offered)}}
	if err := s.Apply(ch); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply([]lease.Change{{Lease: lz(2, lease.Bound), Deleted: true}, {Lease: lz(1, lease.Released)}}); err != nil {
		t.Fatal(err)
	}
	// No Close: the process "dies". A torn record at the end must be ignored.
	f, _ := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("P ve-a hw:02")
	f.Close()

	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := map[string]lease.Lease{}
	for _, l := range s2.Leases("ve-a") {
		got[l.Key()] = l
	}
	if len(got) != 2 || s2.Corrupt != 1 {
		t.Fatalf("replayed %d leases, %d corrupt: %+v", len(got), s2.Corrupt, got)
	}
	l1 := got[lz(1, 0).Key()]
	if l1.State != lease.Released || l1.Hostname != "h \"x\"" || !l1.Expiry.Equal(lz(1, 0).Expiry) {
		t.Fatalf("lease 1 = %+v", l1)
	}
	if l3 := got[withID.Key()]; string(l3.ClientID) != "\x01\x02\x03" || l3.IP != withID.IP {
		t.Fatalf("lease 3 = %+v", l3)
	}
	// The torn line was cut away by the snapshot at open: appends are clean.
	if err := s2.Apply([]lease.Change{{Lease: lz(5, lease.Bound)}}); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, _ := Open(dir, Options{})
	defer s3.Close()
	if s3.Len() != 3 || s3.Corrupt != 0 {
		t.Fatalf("after reopen: %d leases, %d corrupt", s3.Len(), s3.Corrupt)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{CompactMin: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := s.Apply([]lease.Change{{Lease: lz(i%10, lease.Bound)}}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(filepath.Join(dir, FileName))
	if st.Size() > 8192 {
		t.Fatalf("log not compacted: %d bytes", st.Size())
	}
	s.Close()
	s2, _ := Open(dir, Options{})
	defer s2.Close()
	if s2.Len() != 10 {
		t.Fatalf("after compaction %d leases", s2.Len())
	}
}

func BenchmarkApply(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < b.N; i++ {
		if err := s.Apply([]lease.Change{{Lease: lz(i%60000, lease.Bound)}}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStats(t *testing.T) {
	s, err := Open(t.TempDir(), Options{SyncInterval: -1, CompactMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Offers are not persisted: no write.
	if err := s.Apply([]lease.Change{{Lease: lz(1, lease.Offered)}}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Writes != 0 {
		t.Fatalf("offer written: %+v", st)
	}
	// The same lease rewritten: the log grows past 400 bytes per live
	// lease and is compacted.
	for i := 0; i < 10; i++ {
		if err := s.Apply([]lease.Change{{Lease: lz(1, lease.Bound)}}); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Writes != 10 || st.Compactions == 0 || st.WriteMax <= 0 || st.CompactMax <= 0 {
		t.Fatalf("stats after 10 writes: %+v", st)
	}
}
