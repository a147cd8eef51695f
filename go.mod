module github.com/netspawn/netspawn

go 1.26.0

require (
	github.com/insomniacslk/dhcp v0.0.0-20260901064844-234b97448fae // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
