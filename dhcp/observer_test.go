package dhcp

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

type packetKey struct {
	link string
	mt   dhcpv4.MessageType
	out  Outcome
}

// countObserver records what the server reports.
type countObserver struct {
	mu      sync.Mutex
	packets map[packetKey]int
	removed []string
}

type countLink struct {
	o    *countObserver
	name string
}

func (o *countObserver) Link(name string) LinkObserver { return countLink{o, name} }
func (o *countObserver) LinkRemoved(name string) {
	o.mu.Lock()
	o.removed = append(o.removed, name)
	o.mu.Unlock()
}

func (l countLink) Packet(mt dhcpv4.MessageType, out Outcome) {
	l.o.mu.Lock()
	l.o.packets[packetKey{l.name, mt, out}]++
	l.o.mu.Unlock()
}

func TestObserverCountsOutcomes(t *testing.T) {
	obs := &countObserver{packets: map[packetKey]int{}}
	s, err := New(Options{StateDir: t.TempDir(), Observer: obs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.addLink(testCfg, false); err != nil {
		t.Fatal(err)
	}
	l := s.links[testCfg.Name]
	dora(t, s, macA)
	// A request for an address outside the subnet: NAK.
	run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 9)))))
	// Another server's request: dropped; garbage: dropped as unreadable.
	run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 0, 2)))))
	if _, _, _, err := s.process(l, []byte{1, 2, 3}); err == nil {
		t.Fatal("garbage accepted")
	}
	run(t, s, msg(t, dhcpv4.MessageTypeRelease, macA))
	// The batch path counts too.
	var r batchResult
	s.processBatch(l, [][]byte{msg(t, dhcpv4.MessageTypeDiscover, macB).ToBytes()}, &r)
	for k, n := range map[packetKey]int{
		{testCfg.Name, dhcpv4.MessageTypeDiscover, OutcomeOffer}:  2,
		{testCfg.Name, dhcpv4.MessageTypeRequest, OutcomeAck}:     1,
		{testCfg.Name, dhcpv4.MessageTypeRequest, OutcomeNak}:     1,
		{testCfg.Name, dhcpv4.MessageTypeRequest, OutcomeDropped}: 1,
		{testCfg.Name, dhcpv4.MessageTypeNone, OutcomeDropped}:    1,
		{testCfg.Name, dhcpv4.MessageTypeRelease, OutcomeNoReply}: 1,
	} {
		if got := obs.packets[k]; got != n {
			t.Errorf("%s %s %s: counted %d, want %d (all: %v)", k.link, k.mt, k.out, got, n, obs.packets)
		}
	}
	if err := s.RemoveLink(testCfg.Name); err != nil {
		t.Fatal(err)
	}
	if len(obs.removed) != 1 || obs.removed[0] != testCfg.Name {
		t.Errorf("LinkRemoved calls: %v", obs.removed)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, s := range map[Outcome]string{OutcomeOffer: "offer", OutcomeAck: "ack", OutcomeNak: "nak",
		OutcomeNoReply: "noreply", OutcomeDropped: "dropped", NumOutcomes: "unknown"} {
		if o.String() != s {
			t.Errorf("%d: %q, want %q", o, o.String(), s)
		}
	}
}
