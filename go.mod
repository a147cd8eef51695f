module github.com/netspawn/netspawn

go 1.26.0
