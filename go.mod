module github.com/netspawn/netspawn

go 1.26.0

require github.com/dchest/siphash v1.2.3 // indirect
