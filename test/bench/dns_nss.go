package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	nsdns "github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/nss"
)

const dnsNSSSeconds = 5

// dnsNSSLoop calls getaddrinfo on the names of a file (one a line) in a
// loop for a number of seconds and prints the lookups done and the time.
const dnsNSSLoop = `#define _GNU_SOURCE
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec / 1e9; }
int main(int argc, char **argv) {
	static char names[2000][64]; int n = 0;
	FILE *f = fopen(argv[1], "r"); if (!f) return 2;
	while (n < 2000 && fgets(names[n], 64, f)) { names[n][strcspn(names[n], "\n")] = 0; n++; }
	double secs = atof(argv[2]), start = now(), end = start + secs;
	long done = 0, failed = 0;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	while (now() < end) {
		for (int i = 0; i < 100; i++, done++) {
			struct addrinfo *res = NULL;
			if (getaddrinfo(names[done % n], NULL, &hints, &res) != 0) failed++;
			else freeaddrinfo(res);
		}
	}
	printf("%ld %ld %f\n", done, failed, now() - start);
	return 0;
}
`

// dnsNSSBench measures glibc lookups per second through libnss_netspawn
// and through nss_files for the same 1,000 names.
func dnsNSSBench(ctx context.Context, b *B, dir string, zone *nsdns.Zone, hosts string) error {
	if _, err := exec.LookPath("gcc"); err != nil {
		return fmt.Errorf("gcc not found: %w", err)
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "nss", "module", "libnss_netspawn.c")
	if out, err := exec.CommandContext(ctx, "gcc", "-shared", "-fPIC", "-O2", "-Wall",
		"-Wl,-soname,libnss_netspawn.so.2", "-o", filepath.Join(dir, "libnss_netspawn.so.2"), src).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc module: %w\n%s", err, out)
	}
	loopSrc := filepath.Join(dir, "loop.c")
	loop := filepath.Join(dir, "loop")
	if err := os.WriteFile(loopSrc, []byte(dnsNSSLoop), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "gcc", "-O2", "-o", loop, loopSrc).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc loop: %w\n%s", err, out)
	}
	var names strings.Builder
	for i := 0; i < dnsBenchNames; i++ {
		fmt.Fprintf(&names, "m%04d\n", i)
	}
	namesFile := filepath.Join(dir, "names")
	if err := os.WriteFile(namesFile, []byte(names.String()), 0o644); err != nil {
		return err
	}

	l, err := nss.Listen(filepath.Join(dir, nss.SocketName))
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- (&nss.Server{Source: zone, Domain: nsdns.DefaultDomain}).Serve(sctx, l) }()
	defer func() { cancel(); <-done }()

	run := func(source string) (rate, failed float64, err error) {
		conf := filepath.Join(dir, "nsswitch-"+source)
		if err := os.WriteFile(conf, []byte("hosts: "+source+"\n"), 0o644); err != nil {
			return 0, 0, err
		}
		script := fmt.Sprintf(`set -e
mount --bind %s /etc/nsswitch.conf
mount --bind %s /etc/hosts
exec env LD_LIBRARY_PATH=%s NETSPAWN_RUNTIME_DIR=%s %s %s %d`, conf, hosts, dir, dir, loop, namesFile, dnsNSSSeconds)
		out, err := exec.CommandContext(ctx, "unshare", "-m", "-n", "--propagation", "private", "sh", "-c", script).CombinedOutput()
		if err != nil {
			return 0, 0, fmt.Errorf("lookup loop (%s): %w\n%s", source, err, out)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 {
			return 0, 0, fmt.Errorf("lookup loop (%s): %q", source, out)
		}
		n, _ := strconv.ParseFloat(f[0], 64)
		failed, _ = strconv.ParseFloat(f[1], 64)
		secs, _ := strconv.ParseFloat(f[2], 64)
		// A loaded machine may delay the controller past the module's
		// timeout now and then; more than 1% is a failure.
		if failed > n/100 {
			return 0, 0, fmt.Errorf("lookup loop (%s): %v of %v lookups failed", source, failed, n)
		}
		return n / secs, failed, nil
	}
	b.Logf("getaddrinfo loop, %d s each, %d names, one process, private mount namespace", dnsNSSSeconds, dnsBenchNames)
	files, _, err := run("files")
	if err != nil {
		return err
	}
	ours, failed, err := run("netspawn")
	if err != nil {
		return err
	}
	if failed > 0 {
		b.Logf("%v lookups through netspawn hit the module's timeout (machine under load)", failed)
	}
	b.Result("getaddrinfo via files (/etc/hosts, 1000 names)", files, "lookups/s")
	b.Result("getaddrinfo via netspawn NSS module", ours, "lookups/s")
	b.Result("netspawn/files lookup rate ratio", ours/files, "x")
	return nil
}
