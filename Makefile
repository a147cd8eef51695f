# netspawn build, test and install.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
LIBDIR    ?= $(shell if [ -d /lib/x86_64-linux-gnu ] && [ "$(PREFIX)" = /usr ]; then echo /lib/x86_64-linux-gnu; else echo $(PREFIX)/lib; fi)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w"
export CGO_ENABLED := 0

PROGRAMS := netspawn netspawnd netspawnctl
# Debian packages the tests and benchmarks use.
TEST_PKGS := busybox-static iproute2 nftables util-linux debootstrap dnsmasq-base bind9-dnsutils isc-dhcp-client dhcpcd-base gcc libc-bin btrfs-progs
BENCH_PKGS := $(TEST_PKGS) systemd-container hyperfine kea-admin kea-dhcp4-server dnsperf

.PHONY: all build nss test unit e2e vet bench demo install deps-test deps-bench clean lint

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

deps-bench:
	@./test/install-deps.sh $(BENCH_PKGS)

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

e2e: build
	NETSPAWN_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 40m -v ./test/...

test: deps-test vet unit e2e

bench: build deps-bench
	$(GO) run ./test/bench

demo: build deps-test
	@./test/demo.sh

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 bin/netspawn bin/netspawnctl $(DESTDIR)$(BINDIR)/
	install -m 0755 bin/netspawnd $(DESTDIR)$(SBINDIR)/
	install -d $(DESTDIR)$(LIBDIR) && install -m 0644 bin/libnss_netspawn.so.2 $(DESTDIR)$(LIBDIR)/
	install -d $(DESTDIR)$(PREFIX)/share/netspawn
	install -m 0644 configs/netspawnd.service configs/netspawnd.openrc configs/netspawnd.conf configs/nsswitch.conf.example $(DESTDIR)$(PREFIX)/share/netspawn/
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf bin
