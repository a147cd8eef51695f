package dns

import (
	"io"
	"net"
	"strings"

	"github.com/miekg/dns"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
	raw    []byte
}

func newRecorder(remote string, udp bool) *recorder {
	ap := net.ParseIP(remote)
	if udp {
		return &recorder{remote: &net.UDPAddr{IP: ap, Port: 4242}}
	}
	return &recorder{remote: &net.TCPAddr{IP: ap, Port: 4242}}
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	// Round trip through the wire format, as a client would see it.
	b, err := m.Pack()
	if err != nil {
		return err
	}
	r.raw = b
	r.msg = new(dns.Msg)
	return r.msg.Unpack(b)
}
func (r *recorder) Write(b []byte) (int, error) {
	r.msg = new(dns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}
