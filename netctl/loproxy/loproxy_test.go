package loproxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// The proxy splices [::1]:PORT to a target (here another loopback listener).
func TestSplice(t *testing.T) {
	back, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer back.Close()
	go func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	bp := netip.MustParseAddrPort(back.Addr().String())
	// Pick a free port for the front.
	probe, _ := net.Listen("tcp6", "[::1]:0")
	fp := netip.MustParseAddrPort(probe.Addr().String()).Port()
	probe.Close()
	p := New(netip.Addr{}, nil)
	defer p.Close()
	if err := p.Set("m", []Target{{HostPort: fp, Addr: bp.Addr(), Port: bp.Port()}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp6", netip.AddrPortFrom(netip.IPv6Loopback(), fp).String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "ping" {
		t.Fatalf("got %q", got)
	}
	p.Remove("m")
	if c, err := net.Dial("tcp6", netip.AddrPortFrom(netip.IPv6Loopback(), fp).String()); err == nil {
		c.Close()
		t.Fatal("listener still open after Remove")
	}
}

// UDP: each client's datagrams reach the target and the replies come back.
func TestUDPRelay(t *testing.T) {
	back, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer back.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := back.ReadFrom(buf)
			if err != nil {
				return
			}
			back.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	bp := netip.MustParseAddrPort(back.LocalAddr().String())
	probe, _ := net.ListenPacket("udp6", "[::1]:0")
	fp := netip.MustParseAddrPort(probe.LocalAddr().String()).Port()
	probe.Close()
	p := New(netip.Addr{}, nil)
	defer p.Close()
	if err := p.Set("m", []Target{{Proto: "udp", HostPort: fp, Addr: bp.Addr(), Port: bp.Port()}}); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one", "two"} {
		c, err := net.Dial("udp6", netip.AddrPortFrom(netip.IPv6Loopback(), fp).String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(msg))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "echo:"+msg {
			t.Fatalf("client %s: %q %v", msg, buf[:n], err)
		}
	}
	p.Remove("m")
}
