module github.com/netspawn/netspawn

go 1.26.0

require (
	github.com/creack/pty v1.1.24
	github.com/spf13/pflag v1.0.10
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require github.com/vishvananda/netns v0.0.5 // indirect
