// Command netspawn-cni is netspawnd's CNI plugin (installed as
// /opt/cni/bin/netspawn): runtimes that speak CNI get netspawn's
// networking (addresses, NAT, port forwards, names, zones) for their
// containers. See docs/cni.md.
package main

import (
	"github.com/netspawn/netspawn/cni"

	"github.com/containernetworking/cni/pkg/skel"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, "netspawn CNI plugin (CNI spec 1.1.0)")
}
