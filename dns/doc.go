// Package dns is netspawn's DNS server for machine names, embedded in
// netspawnd. It knows nothing of the controller: it reads names from a
// Source (the controller feeds a Zone on every change) and maps client
// addresses to views with a function the controller supplies.
//
// A query goes through stages, each a pure function testable on its own:
//
//   - request checks (Handler.Local): opcode, one question, class, EDNS version;
//   - the Authority: NAME and NAME.<domain> (A, AAAA, ANY), the domain's
//     SOA, NXDOMAIN+SOA for unknown names under the domain, NODATA for
//     other types, PTR for the machines' addresses — filtered by the
//     client's view;
//   - the Forwarder: everything else, from its TTL-respecting Cache or the
//     host's upstream resolvers (resolv.conf, followed when it changes),
//     UDP then TCP on truncation, at most MaxUpstreams, a per-upstream
//     timeout and a cap on concurrent forwards;
//   - Finish: EDNS0 and truncation to the client's buffer size.
//
// The Server binds UDP and TCP sockets to specific addresses only (never a
// wildcard). UDP is read in recvmmsg batches by a few goroutines; plain
// A/AAAA queries for machine names are answered from the wire format
// without building messages (fast.go), everything else through miekg/dns.
// Forwarded queries share one connected UDP socket per upstream, read in
// batches by one goroutine that matches replies to exchanges by ID and
// question (upstreammux.go); a slow upstream never blocks local answers. TCP is served by miekg/dns with several queries per
// connection.
package dns
