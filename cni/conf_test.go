package cni

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"

	"github.com/containernetworking/cni/pkg/types"
)

func code(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestParseConf(t *testing.T) {
	for _, c := range []struct {
		conf string
		code uint
		want string
	}{
		{`{"cniVersion":"1.1.0","name":"pods","type":"netspawn"}`, 0, ""},
		{`{"cniVersion":"1.1.0","name":"pods","type":"netspawn","zone":"blue","autoStart":false}`, 0, ""},
		{`{"name":`, ErrDecoding, "not valid JSON"},
		{`{"cniVersion":"1.1.0","type":"netspawn"}`, ErrInvalidConfig, `no "name"`},
		{`{"cniVersion":"1.1.0","name":"p","type":"netspawn","ipam":{"type":"host-local"}}`, ErrInvalidConfig, "ipam"},
		{`{"cniVersion":"1.1.0","name":"p","type":"netspawn","zone":"a/b"}`, ErrInvalidConfig, "zone"},
		{`{"cniVersion":"1.1.0","name":"p","type":"netspawn","zone":"much-too-long-zone"}`, ErrInvalidConfig, "zone"},
	} {
		_, err := ParseConf([]byte(c.conf))
		if code(err) != c.code || (c.want != "" && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v (code %d), want code %d mentioning %q", c.conf, err, code(err), c.code, c.want)
		}
	}
	c, _ := ParseConf([]byte(`{"name":"p","autoStart":false}`))
	if c.autoStart() {
		t.Error("autoStart false ignored")
	}
	c, _ = ParseConf([]byte(`{"name":"p"}`))
	if !c.autoStart() {
		t.Error("autoStart should default to true")
	}
}

func TestMachineName(t *testing.T) {
	long := strings.Repeat("ab12", 16)
	for _, c := range []struct {
		id, args, want string
		code           uint
	}{
		{"cnitool-0123456789abcdef0123", "", "cnitool-0123456789abcdef0123", 0},
		{long, "", long[:12], 0},
		{long, "K8S_POD_NAME=web;K8S_POD_NAMESPACE=shop;K8S_POD_INFRA_CONTAINER_ID=" + long, "web.shop", 0},
		{long, "K8S_POD_NAME=web", "web", 0},
		{long, "NETSPAWN_NAME=db;K8S_POD_NAME=web", "db", 0},
		{long, "NETSPAWN_NAME=bad_name", "", ErrInvalidEnv},
		{"with space", "", "", ErrInvalidEnv},
	} {
		args, err := cniArgs(c.args)
		if err != nil {
			t.Fatal(err)
		}
		got, err := MachineName(c.id, args)
		if got != c.want || code(err) != c.code {
			t.Errorf("%q %q: %q %v, want %q code %d", c.id, c.args, got, err, c.want, c.code)
		}
	}
	if _, err := cniArgs("IgnoreUnknown=1;junk"); code(err) != ErrInvalidEnv {
		t.Errorf("CNI_ARGS without '=': %v", err)
	}
}

func TestRequest(t *testing.T) {
	conf := func(s string) *NetConf {
		c, err := ParseConf([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	inv := Invocation{ContainerID: "c1", NetNS: "/run/netns/c1", IfName: "eth0", Args: "IgnoreUnknown=1"}
	req, err := Request(conf(`{"name":"pods","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"0.0.0.0"}],
		"ips":["192.168.40.7/28"],"mac":"02:00:00:00:00:07"}}`), inv)
	if err != nil {
		t.Fatal(err)
	}
	want := api.RegisterRequest{Name: "c1", Class: "container", Service: "cni", NetNS: "/run/netns/c1",
		CNI: &api.CNIAttachment{ContainerID: "c1", IfName: "eth0", Network: "pods"},
		Network: api.NetworkRequest{Veth: true, ContainerIf: "eth0", ConfigureInside: true, Address: "192.168.40.7", MAC: "02:00:00:00:00:07",
			Ports: []api.Port{{Protocol: "tcp", HostPort: 8080, ContainerPort: 80}, {Protocol: "udp", HostPort: 53, ContainerPort: 53}}}}
	gb, _ := json.Marshal(req)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("request\n got %s\nwant %s", gb, wb)
	}
	zreq, err := Request(conf(`{"name":"pods","zone":"blue","args":{"cni":{"ips":["10.5.0.9"]}}}`), inv)
	if err != nil || zreq.Network.Zone != "blue" || zreq.Network.Veth || zreq.Network.Address != "10.5.0.9" {
		t.Errorf("zone request: %+v %v", zreq.Network, err)
	}
	for _, bad := range []string{
		`{"name":"p","runtimeConfig":{"ips":["10.0.0.1","10.0.0.2"]}}`,
		`{"name":"p","runtimeConfig":{"ips":["fd00::1"]}}`,
		`{"name":"p","runtimeConfig":{"ips":["nonsense"]}}`,
		`{"name":"p","runtimeConfig":{"mac":"01:00:5e:00:00:01"}}`,
		`{"name":"p","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}`,
		`{"name":"p","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"sctp"}]}}`,
		`{"name":"p","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"10.0.0.1"}]}}`,
	} {
		if _, err := Request(conf(bad), inv); code(err) != ErrInvalidConfig {
			t.Errorf("%s: %v, want code %d", bad, err, ErrInvalidConfig)
		}
	}
}

func TestResult(t *testing.T) {
	c, _ := ParseConf([]byte(`{"name":"pods","dns":{"domain":"example"},"runtimeConfig":{"dns":{"servers":["10.96.0.10"],"searches":["svc.local"],"options":["ndots:5"]}}}`))
	reply := api.RegisterReply{
		Interfaces: []api.Interface{{Name: "eth0", MAC: "02:00:00:00:00:02", HostLink: "ve-c1", HostMAC: "02:00:00:00:00:01", MTU: 1450,
			Addresses: []string{"192.168.0.2/28", "fd00:1::2/64"}, Gateway4: "192.168.0.1", Gateway6: "fd00:1::1"}},
		DNS: []string{"192.168.0.1"}, SearchDomains: []string{"netspawn.internal"},
	}
	r, err := Result(c, "/run/netns/c1", reply)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	want := `{"cniVersion":"1.1.0","dns":{"domain":"example","nameservers":["10.96.0.10","192.168.0.1"],"options":["ndots:5"],"search":["svc.local","netspawn.internal"]},` +
		`"interfaces":[{"mac":"02:00:00:00:00:01","name":"ve-c1"},{"mac":"02:00:00:00:00:02","mtu":1450,"name":"eth0","sandbox":"/run/netns/c1"}],` +
		`"ips":[{"address":"192.168.0.2/28","gateway":"192.168.0.1","interface":1},{"address":"fd00:1::2/64","gateway":"fd00:1::1","interface":1}],` +
		`"routes":[{"dst":"0.0.0.0/0","gw":"192.168.0.1"},{"dst":"::/0","gw":"fd00:1::1"}]}`
	if string(b) != want {
		t.Errorf("result\n got %s\nwant %s", b, want)
	}
	if _, err := Result(c, "/x", api.RegisterReply{Interfaces: []api.Interface{{Name: "eth0", Addresses: []string{"bogus"}}}}); err == nil {
		t.Error("a bad address in the reply was accepted")
	}
}
