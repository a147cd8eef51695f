package nss

import (
	"bytes"
	"testing"
)

// FuzzParseRequest checks that any datagram either fails to parse or
// round-trips, and that the answer to it always encodes to a reply the
// C module's checks accept.
func FuzzParseRequest(f *testing.F) {
	for _, r := range []Request{
		{Op: OpByName, Name: "web"},
		{Op: OpByName, Family: FamilyIPv6, Name: "WEB.netspawn.internal."},
	} {
		b, _ := AppendRequest(nil, r)
		f.Add(b)
	}
	f.Add([]byte{1, 2, 2, 4, 192, 168, 0, 2})
	s := &Server{Source: testSource(), Domain: "netspawn.internal"}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			return
		}
		if req.Op == OpByName || req.Op == OpByAddr {
			enc, err := AppendRequest(nil, req)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", req, err)
			}
			if req.Op == OpByName && !bytes.Equal(enc, b) {
				t.Fatalf("round trip %x -> %x", b, enc)
			}
		}
		rep := AppendReply(nil, s.Answer(req))
		if len(rep) > MaxReply {
			t.Fatalf("reply of %d bytes", len(rep))
		}
		if _, err := ParseReply(rep); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
	})
}
