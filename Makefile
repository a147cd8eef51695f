# netspawn build, test and install.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
# CNI plugins: where containerd, CRI-O and Nomad look by default, and the
# distribution's own plugin directory.
CNIBINDIR ?= /opt/cni/bin
# The NSS module: with PREFIX=/usr on a multiarch system (Debian, Ubuntu) the
# multiarch directory under /usr (Debian policy for new packages; with merged
# /usr, /lib/TRIPLET is the same directory), $(PREFIX)/lib otherwise.
MULTIARCH ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || $(CC) -print-multiarch 2>/dev/null)
LIBDIR    ?= $(if $(and $(filter /usr,$(PREFIX)),$(MULTIARCH)),/usr/lib/$(MULTIARCH),$(PREFIX)/lib)
DOCDIR    ?= $(PREFIX)/share/doc/netspawn
# What netspawn --version prints: git describe, or "devel" outside a checkout.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
endif
# Where make build puts the programs (make deb builds into a directory of its
# own, so that the e2e suite's bin/ is never rewritten under it).
OUT       ?= bin
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
# Manual pages and shell completions (make man writes them to bin/man and
# bin/completion). zsh: Debian's vendor directory under /usr, the
# site-functions directory zsh searches elsewhere (Arch and Fedora pass
# ZSHCOMPDIR=/usr/share/zsh/site-functions).
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(shell if [ "$(PREFIX)" = /usr ]; then echo /usr/share/zsh/vendor-completions; else echo $(PREFIX)/share/zsh/site-functions; fi)
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# MAN_GZIP=1 compresses the installed pages (gzip -9n), for packagers whose
# tools do not (makepkg and rpmbuild do).
MAN_GZIP    ?=
MAN_DATE    ?= $(shell git log -1 --format=%cs 2>/dev/null)
export CGO_ENABLED := 0

PROGRAMS := netspawn netspawnd netspawnctl netspawn-cni
# Debian packages the tests and benchmarks use.
TEST_PKGS := busybox-static iproute2 nftables util-linux debootstrap dnsmasq-base bind9-dnsutils isc-dhcp-client dhcpcd-base gcc libc-bin btrfs-progs etcd-server etcd-client containernetworking-plugins iptables groff-base bash-completion zsh fish dpkg-dev systemd libnss-systemd runc fdisk e2fsprogs squashfs-tools cryptsetup-bin
BENCH_PKGS := $(TEST_PKGS) systemd-container hyperfine kea-admin kea-dhcp4-server dnsperf iperf3
# make demo-cluster: what it runs (go builds its busybox tree).
DEMO_CLUSTER_PKGS := busybox-static iproute2 nftables util-linux etcd-server etcd-client
# The host lane: a Debian guest under QEMU (software emulation without /dev/kvm).
HOSTS_PKGS := $(TEST_PKGS) qemu-system-x86 e2fsprogs

.PHONY: all build nss man test unit e2e hosts vet bench soak demo demo-cluster deps-demo-cluster install deb deps-test deps-bench deps-hosts test-hosts clean lint lint-packaging

all: build

build: nss
	@mkdir -p $(OUT)
	$(GO) build $(GOFLAGS_BUILD) -o $(OUT)/ ./cmd/...

# The NSS module is plain C (no cgo in the Go programs).
nss:
	@mkdir -p $(OUT)
	$(CC) -shared -fPIC -O2 -Wall -Wl,-soname,libnss_netspawn.so.2 -o $(OUT)/libnss_netspawn.so.2 nss/module/libnss_netspawn.c

# Manual pages and bash, zsh and fish completions, generated from the
# programs' own flag, settings and command tables (internal/mangen).
man:
	$(GO) run ./internal/mangen -o $(OUT) -date "$(MAN_DATE)" -version "$(VERSION)"

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

install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 $(OUT)/netspawn $(OUT)/netspawnctl $(DESTDIR)$(BINDIR)/
	install -m 0755 $(OUT)/netspawnd $(DESTDIR)$(SBINDIR)/
	install -d $(DESTDIR)$(LIBDIR) && install -m 0644 $(OUT)/libnss_netspawn.so.2 $(DESTDIR)$(LIBDIR)/
	install -d $(DESTDIR)$(CNIBINDIR) $(DESTDIR)$(PREFIX)/lib/cni
	install -m 0755 $(OUT)/netspawn-cni $(DESTDIR)$(CNIBINDIR)/netspawn
	install -m 0755 $(OUT)/netspawn-cni $(DESTDIR)$(PREFIX)/lib/cni/netspawn
	install -d $(DESTDIR)$(PREFIX)/share/netspawn
	install -m 0644 configs/netspawnd.conf configs/nsswitch.conf.example $(DESTDIR)$(PREFIX)/share/netspawn/
	@# The service files name the installed netspawnd.
	for f in netspawnd.service netspawnd.openrc; do \
		sed -e 's|/usr/local/sbin/netspawnd|$(SBINDIR)/netspawnd|' -e 's|/usr/local/share/doc/netspawn|$(DOCDIR)|' configs/$$f >$(OUT)/$$f || exit 1; \
	done
	install -m 0644 $(OUT)/netspawnd.service $(OUT)/netspawnd.openrc $(DESTDIR)$(PREFIX)/share/netspawn/
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(OUT)/man/man1/netspawn.1 $(OUT)/man/man1/netspawnctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(OUT)/man/man5/netspawn.nspawn.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(OUT)/man/man8/netspawnd.8 $(DESTDIR)$(MANDIR)/man8/
	@if [ -n "$(MAN_GZIP)" ]; then gzip -9nf $(DESTDIR)$(MANDIR)/man1/netspawn.1 $(DESTDIR)$(MANDIR)/man1/netspawnctl.1 $(DESTDIR)$(MANDIR)/man5/netspawn.nspawn.5 $(DESTDIR)$(MANDIR)/man8/netspawnd.8; fi
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 $(OUT)/completion/bash/netspawn $(OUT)/completion/bash/netspawnctl $(OUT)/completion/bash/netspawnd $(DESTDIR)$(BASHCOMPDIR)/
	install -m 0644 $(OUT)/completion/zsh/_netspawn $(OUT)/completion/zsh/_netspawnctl $(OUT)/completion/zsh/_netspawnd $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(OUT)/completion/fish/netspawn.fish $(OUT)/completion/fish/netspawnctl.fish $(OUT)/completion/fish/netspawnd.fish $(DESTDIR)$(FISHCOMPDIR)/
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

# The Arch PKGBUILD and the RPM spec: what can be checked without makepkg
# and rpmbuild (bash -n, the spec's %files against make install), and
# namcap, rpmlint where installed.
lint-packaging:
	$(GO) test -count=1 -v ./packaging/

# A Debian package (dpkg-deb) in dist/, built from make install (see
# packaging/deb/README.md).
deb:
	@VERSION=$(VERSION) ./packaging/deb/build.sh dist

clean:
	rm -rf bin dist
