/* An LD_PRELOAD shim for the DHCP benchmark's load generator: every UDP
 * socket perfdhcp opens gets an 8 MiB receive buffer, as the servers' do.
 * With the default 208 KiB, a server capped by a CPU quota answers in
 * bursts (it runs 1 ms in every 4) and perfdhcp's socket dropped replies the
 * server had sent, so the rate ladder measured the generator's buffer as
 * much as the server. Built by the benchmark with gcc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
int socket(int domain, int type, int protocol) {
	static int (*real)(int, int, int);
	if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	int fd = real(domain, type, protocol);
	if (fd >= 0 && (type & 0xf) == SOCK_DGRAM) {
		int n = 8 << 20;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof n) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
	}
	return fd;
}
