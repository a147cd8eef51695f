// Package netctl is the network controller behind netspawnd: the machine
// registry, address pools, links, nftables and the API server.
package netctl
