# netspawn build, test and install.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
# CNI plugins: where containerd, CRI-O and Nomad look by default, and the
# distribution's own plugin directory.
CNIBINDIR ?= /opt/cni/bin
LIBDIR    ?= $(shell if [ -d /lib/x86_64-linux-gnu ] && [ "$(PREFIX)" = /usr ]; then echo /lib/x86_64-linux-gnu; else echo $(PREFIX)/lib; fi)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w"
export CGO_ENABLED := 0

PROGRAMS := netspawn netspawnd netspawnctl netspawn-cni
# Debian packages the tests and benchmarks use.
TEST_PKGS := busybox-static iproute2 nftables util-linux debootstrap dnsmasq-base bind9-dnsutils isc-dhcp-client dhcpcd-base gcc libc-bin btrfs-progs etcd-server etcd-client containernetworking-plugins iptables fdisk e2fsprogs squashfs-tools
BENCH_PKGS := $(TEST_PKGS) systemd-container hyperfine kea-admin kea-dhcp4-server dnsperf iperf3
# make demo-cluster: what it runs (go builds its busybox tree).
DEMO_CLUSTER_PKGS := busybox-static iproute2 nftables util-linux etcd-server etcd-client
# The host lane: a Debian guest under QEMU (software emulation without /dev/kvm).
HOSTS_PKGS := $(TEST_PKGS) qemu-system-x86 e2fsprogs

.PHONY: all build nss test unit e2e hosts vet bench soak demo demo-cluster deps-demo-cluster install deps-test deps-bench deps-hosts test-hosts clean lint

all: build

build: nss
	@mkdir -p bin
	$(GO) build $(GOFLAGS_BUILD) -o bin/ ./cmd/...

# The NSS module is plain C (no cgo in the Go programs).
nss:
	@mkdir -p bin
	$(CC) -shared -fPIC -O2 -Wall -Wl,-soname,libnss_netspawn.so.2 -o bin/libnss_netspawn.so.2 nss/module/libnss_netspawn.c

# Install the Debian packages that the tests need, when missing.
deps-test:
	@./test/install-deps.sh $(TEST_PKGS)

deps-demo-cluster:
	@./test/install-deps.sh $(DEMO_CLUSTER_PKGS)

deps-bench:
	@./test/install-deps.sh $(BENCH_PKGS)

deps-hosts:
	@./test/install-deps.sh $(HOSTS_PKGS)

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

e2e: build
	NETSPAWN_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 40m -v ./test/...

# The host lane runs in make test too: about 4 minutes to build its guest
# once, then about 2 minutes per host profile, well inside CI's 90 minutes.
test: deps-test deps-hosts vet unit e2e hosts

# The host lane: netspawn on a systemd, cgroup v2 host with networkd, resolved,
# machined and a Docker-like firewall, in a QEMU guest (see test/hostlane).
hosts: build
	NETSPAWN_BIN=$(CURDIR)/bin $(GO) run ./test/hostlane $(HOSTS_ARGS)

test-hosts: deps-hosts hosts

# The churn soak: 2,000 container starts and stops across -n, zone and bridge
# members with netspawnd killed -9 twenty times (make test runs 200 and 3).
soak: build deps-test
	NETSPAWN_CHURN_CYCLES=2000 NETSPAWN_CHURN_KILLS=20 NETSPAWN_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 3h -v -run '^TestChurn$$' ./test/

bench: build deps-bench
	$(GO) run ./test/bench

demo: build deps-test
	@./test/demo.sh

# Three hosts in network namespaces, etcd, one zone across them, a host killed.
demo-cluster: build deps-demo-cluster
	@./test/demo-cluster.sh

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 bin/netspawn bin/netspawnctl $(DESTDIR)$(BINDIR)/
	install -m 0755 bin/netspawnd $(DESTDIR)$(SBINDIR)/
	install -d $(DESTDIR)$(LIBDIR) && install -m 0644 bin/libnss_netspawn.so.2 $(DESTDIR)$(LIBDIR)/
	install -d $(DESTDIR)$(CNIBINDIR) $(DESTDIR)$(PREFIX)/lib/cni
	install -m 0755 bin/netspawn-cni $(DESTDIR)$(CNIBINDIR)/netspawn
	install -m 0755 bin/netspawn-cni $(DESTDIR)$(PREFIX)/lib/cni/netspawn
	install -d $(DESTDIR)$(PREFIX)/share/netspawn
	install -m 0644 configs/netspawnd.service configs/netspawnd.openrc configs/netspawnd.conf configs/nsswitch.conf.example $(DESTDIR)$(PREFIX)/share/netspawn/
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf bin
