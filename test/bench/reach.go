package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func init() { registerChild("reach", reachChild) }

// reachChild is the host's user waiting for a new machine: every 10 ms it
// asks the DNS server at REACH_DNS for REACH_NAME and pings the address it
// gets, until an echo comes back (it prints the address and exits) or
// REACH_TIMEOUT has passed. Each try waits 20 ms for its answers, so the
// time to reach is known to about 30 ms, where `ping -W1` would add a
// second for every try made before the machine was up.
func reachChild() error {
	name, server := os.Getenv("REACH_NAME"), os.Getenv("REACH_DNS")
	timeout, err := time.ParseDuration(os.Getenv("REACH_TIMEOUT"))
	if name == "" || server == "" || err != nil {
		return errors.New("needs REACH_NAME, REACH_DNS and REACH_TIMEOUT")
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return fmt.Errorf("ICMP socket: %w", err)
	}
	defer conn.Close()
	c := &dns.Client{Timeout: 20 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	deadline := time.Now().Add(timeout)
	for seq := 1; time.Now().Before(deadline); seq++ {
		if r, _, err := c.Exchange(q, server); err == nil {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok && echo(conn, a.A, seq) {
					fmt.Println(a.A)
					return nil
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s not reached within %v", name, timeout)
}

// echo sends one ICMP echo request to ip and waits 20 ms for its reply.
func echo(conn *icmp.PacketConn, ip net.IP, seq int) bool {
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("netspawn bench")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	if _, err := conn.WriteTo(b, &net.IPAddr{IP: ip}); err != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 1500)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			return false
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq && peer.String() == ip.String() {
			return true
		}
	}
}
