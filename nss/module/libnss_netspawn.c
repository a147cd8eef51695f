/*
 * libnss_netspawn.so.2: the hosts database for netspawn's machines.
 *
 * A small ABI adapter and nothing else: every lookup connects to the
 * controller's Unix SOCK_SEQPACKET socket, sends one request, reads one
 * reply (protocol: nss/protocol.go) and lays the result out in glibc's
 * buffer. No threads, no global state, no allocation; every descriptor is
 * close-on-exec and closed before returning. When the socket is absent,
 * refuses, or does not answer within NS_TIMEOUT_MS (a hung or stopped
 * controller), the lookup returns NSS_STATUS_UNAVAIL so that the next
 * source in nsswitch.conf answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <nss.h>
#include <poll.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NS_DEFAULT_SOCKET "/run/netspawn/nss.sock"
#define NS_SOCKET_NAME "/nss.sock"
#define NS_TIMEOUT_MS 200

#define NS_VERSION 1
#define NS_OP_BYNAME 1
#define NS_OP_BYADDR 2
#define NS_FOUND 0
#define NS_NOTFOUND 1
#define NS_NODATA 2
#define NS_MAX_NAME 253
#define NS_MAX_ADDRS 16
#define NS_MAX_REPLY (8 + 255 + 4 * NS_MAX_ADDRS + 16 * NS_MAX_ADDRS)

nss_gethostbyname4_r _nss_netspawn_gethostbyname4_r;
nss_gethostbyname3_r _nss_netspawn_gethostbyname3_r;
nss_gethostbyname2_r _nss_netspawn_gethostbyname2_r;
nss_gethostbyname_r _nss_netspawn_gethostbyname_r;
nss_gethostbyaddr2_r _nss_netspawn_gethostbyaddr2_r;
nss_gethostbyaddr_r _nss_netspawn_gethostbyaddr_r;

struct ns_reply {
	unsigned char status, n4, n6, namelen;
	const unsigned char *name, *a4, *a6;
	unsigned char buf[NS_MAX_REPLY + 1];
};

static long ns_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (ms, CLOCK_MONOTONIC). */
static int ns_wait(int fd, short events, long deadline)
{
	for (;;) {
		long left = deadline - ns_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)left);
		if (r > 0) {
			if (p.revents & events)
				return 0;
			errno = ECONNRESET;
			return -1;
		}
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/*
 * Ask the controller. Returns 0 with *rep filled, or -1 with errno set
 * when the controller is unavailable or answered nonsense.
 */
static int ns_ask(unsigned char op, unsigned char family, const void *payload,
		  size_t len, struct ns_reply *rep)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *dir = secure_getenv("NETSPAWN_RUNTIME_DIR");
	size_t dl = dir ? strlen(dir) : 0;
	if (dir && dl > 0 && dl + sizeof(NS_SOCKET_NAME) <= sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, dir, dl);
		memcpy(sa.sun_path + dl, NS_SOCKET_NAME, sizeof(NS_SOCKET_NAME));
	} else {
		memcpy(sa.sun_path, NS_DEFAULT_SOCKET, sizeof(NS_DEFAULT_SOCKET));
	}

	unsigned char req[4 + NS_MAX_NAME];
	if (len > NS_MAX_NAME) {
		errno = EINVAL;
		return -1;
	}
	req[0] = NS_VERSION;
	req[1] = op;
	req[2] = family;
	req[3] = (unsigned char)len;
	memcpy(req + 4, payload, len);

	long deadline = ns_now_ms() + NS_TIMEOUT_MS;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int saved;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* A full backlog (EAGAIN) means a hung controller: give up at once. */
		if (errno != EINPROGRESS || ns_wait(fd, POLLOUT, deadline) < 0)
			goto fail;
	}
	for (;;) {
		ssize_t n = send(fd, req, 4 + len, MSG_NOSIGNAL);
		if (n == (ssize_t)(4 + len))
			break;
		if (n >= 0) {
			errno = EPROTO;
			goto fail;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || ns_wait(fd, POLLOUT, deadline) < 0)
			goto fail;
	}
	ssize_t n;
	for (;;) {
		if (ns_wait(fd, POLLIN, deadline) < 0)
			goto fail;
		n = recv(fd, rep->buf, sizeof(rep->buf), 0);
		if (n >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN)
			goto fail;
	}
	close(fd);

	/* Anything unexpected, a server error (status 3) included, is UNAVAIL. */
	const unsigned char *b = rep->buf;
	if (n < 8 || b[0] != NS_VERSION || b[1] > NS_NODATA || b[2] > NS_MAX_ADDRS || b[3] > NS_MAX_ADDRS ||
	    (size_t)n != 8 + (size_t)b[4] + 4 * (size_t)b[2] + 16 * (size_t)b[3] ||
	    (b[1] == NS_FOUND && b[4] == 0) || memchr(b + 8, 0, b[4]) != NULL) {
		errno = EPROTO;
		return -1;
	}
	rep->status = b[1];
	rep->n4 = b[2];
	rep->n6 = b[3];
	rep->namelen = b[4];
	rep->name = b + 8;
	rep->a4 = rep->name + rep->namelen;
	rep->a6 = rep->a4 + 4 * (size_t)rep->n4;
	return 0;

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static enum nss_status ns_unavail(int *errnop, int *h_errnop)
{
	*errnop = errno ? errno : EIO;
	*h_errnop = NO_RECOVERY;
	return NSS_STATUS_UNAVAIL;
}

static enum nss_status ns_erange(int *errnop, int *h_errnop)
{
	*errnop = ERANGE;
	*h_errnop = NETDB_INTERNAL;
	return NSS_STATUS_TRYAGAIN;
}

static enum nss_status ns_notfound(const struct ns_reply *rep, int *errnop, int *h_errnop)
{
	*errnop = ENOENT;
	*h_errnop = rep->status == NS_NODATA ? NO_DATA : HOST_NOT_FOUND;
	return NSS_STATUS_NOTFOUND;
}

/* The offset from buffer of the first suitably aligned byte at or after off. */
static size_t ns_align(const char *buffer, size_t off)
{
	uintptr_t a = alignof(max_align_t);
	uintptr_t p = (uintptr_t)buffer + off;
	return off + (size_t)(((p + a - 1) & ~(a - 1)) - p);
}

/* Ask by name; a name the controller cannot hold is simply not ours. */
static int ns_byname(const char *name, unsigned char family, struct ns_reply *rep)
{
	size_t len = strnlen(name, NS_MAX_NAME + 1);
	if (len == 0 || len > NS_MAX_NAME) {
		rep->status = NS_NOTFOUND;
		return 0;
	}
	return ns_ask(NS_OP_BYNAME, family, name, len, rep);
}

enum nss_status _nss_netspawn_gethostbyname4_r(const char *name, struct gaih_addrtuple **pat,
					       char *buffer, size_t buflen, int *errnop,
					       int *h_errnop, int32_t *ttlp)
{
	struct ns_reply rep;
	if (ns_byname(name, AF_UNSPEC, &rep) < 0)
		return ns_unavail(errnop, h_errnop);
	if (rep.status != NS_FOUND || rep.n4 + rep.n6 == 0)
		return ns_notfound(&rep, errnop, h_errnop);

	size_t count = (size_t)rep.n4 + rep.n6;
	size_t off = ns_align(buffer, (size_t)rep.namelen + 1);
	size_t need = off + count * sizeof(struct gaih_addrtuple);
	if (buflen < need)
		return ns_erange(errnop, h_errnop);

	char *cname = buffer;
	memcpy(cname, rep.name, rep.namelen);
	cname[rep.namelen] = '\0';
	struct gaih_addrtuple *t = (struct gaih_addrtuple *)(buffer + off);
	memset(t, 0, count * sizeof(*t));
	for (size_t i = 0; i < count; i++) {
		t[i].next = i + 1 < count ? &t[i + 1] : NULL;
		t[i].name = cname;
		if (i < rep.n4) {
			t[i].family = AF_INET;
			memcpy(t[i].addr, rep.a4 + 4 * i, 4);
		} else {
			t[i].family = AF_INET6;
			memcpy(t[i].addr, rep.a6 + 16 * (i - rep.n4), 16);
		}
	}
	/* nscd passes a preallocated first tuple in *pat. */
	if (*pat)
		**pat = t[0];
	else
		*pat = &t[0];
	if (ttlp)
		*ttlp = 0;
	*h_errnop = NETDB_SUCCESS;
	return NSS_STATUS_SUCCESS;
}

/* Lay out a hostent with one name, no aliases and count addresses. */
static enum nss_status ns_hostent(struct hostent *host, char *buffer, size_t buflen,
				  const unsigned char *name, size_t namelen, int af,
				  const unsigned char *addrs, size_t count, int *errnop,
				  int *h_errnop)
{
	size_t alen = af == AF_INET ? 4 : 16;
	size_t off_aliases = ns_align(buffer, namelen + 1);
	size_t off_list = off_aliases + sizeof(char *);
	size_t off_addrs = off_list + (count + 1) * sizeof(char *);
	size_t need = off_addrs + count * alen;
	if (buflen < need)
		return ns_erange(errnop, h_errnop);

	memcpy(buffer, name, namelen);
	buffer[namelen] = '\0';
	char **aliases = (char **)(buffer + off_aliases);
	aliases[0] = NULL;
	char **list = (char **)(buffer + off_list);
	for (size_t i = 0; i < count; i++) {
		list[i] = buffer + off_addrs + i * alen;
		memcpy(list[i], addrs + i * alen, alen);
	}
	list[count] = NULL;
	host->h_name = buffer;
	host->h_aliases = aliases;
	host->h_addrtype = af;
	host->h_length = (int)alen;
	host->h_addr_list = list;
	*h_errnop = NETDB_SUCCESS;
	return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_netspawn_gethostbyname3_r(const char *name, int af, struct hostent *host,
					       char *buffer, size_t buflen, int *errnop,
					       int *h_errnop, int32_t *ttlp, char **canonp)
{
	if (af == AF_UNSPEC)
		af = AF_INET;
	if (af != AF_INET && af != AF_INET6) {
		*errnop = EAFNOSUPPORT;
		*h_errnop = NO_DATA;
		return NSS_STATUS_UNAVAIL;
	}
	struct ns_reply rep;
	if (ns_byname(name, (unsigned char)af, &rep) < 0)
		return ns_unavail(errnop, h_errnop);
	size_t count = af == AF_INET ? rep.n4 : rep.n6;
	if (rep.status != NS_FOUND || count == 0) {
		if (rep.status == NS_FOUND)
			rep.status = NS_NODATA;
		return ns_notfound(&rep, errnop, h_errnop);
	}
	enum nss_status st = ns_hostent(host, buffer, buflen, rep.name, rep.namelen, af,
					af == AF_INET ? rep.a4 : rep.a6, count, errnop, h_errnop);
	if (st != NSS_STATUS_SUCCESS)
		return st;
	if (ttlp)
		*ttlp = 0;
	if (canonp)
		*canonp = host->h_name;
	return st;
}

enum nss_status _nss_netspawn_gethostbyname2_r(const char *name, int af, struct hostent *host,
					       char *buffer, size_t buflen, int *errnop,
					       int *h_errnop)
{
	return _nss_netspawn_gethostbyname3_r(name, af, host, buffer, buflen, errnop, h_errnop,
					      NULL, NULL);
}

enum nss_status _nss_netspawn_gethostbyname_r(const char *name, struct hostent *host,
					      char *buffer, size_t buflen, int *errnop,
					      int *h_errnop)
{
	return _nss_netspawn_gethostbyname3_r(name, AF_INET, host, buffer, buflen, errnop,
					      h_errnop, NULL, NULL);
}

enum nss_status _nss_netspawn_gethostbyaddr2_r(const void *addr, socklen_t len, int af,
					       struct hostent *host, char *buffer, size_t buflen,
					       int *errnop, int *h_errnop, int32_t *ttlp)
{
	if (!((af == AF_INET && len == 4) || (af == AF_INET6 && len == 16))) {
		*errnop = EINVAL;
		*h_errnop = NO_RECOVERY;
		return NSS_STATUS_UNAVAIL;
	}
	struct ns_reply rep;
	if (ns_ask(NS_OP_BYADDR, (unsigned char)af, addr, len, &rep) < 0)
		return ns_unavail(errnop, h_errnop);
	if (rep.status != NS_FOUND)
		return ns_notfound(&rep, errnop, h_errnop);
	enum nss_status st = ns_hostent(host, buffer, buflen, rep.name, rep.namelen, af, addr, 1,
					errnop, h_errnop);
	if (st == NSS_STATUS_SUCCESS && ttlp)
		*ttlp = 0;
	return st;
}

enum nss_status _nss_netspawn_gethostbyaddr_r(const void *addr, socklen_t len, int af,
					      struct hostent *host, char *buffer, size_t buflen,
					      int *errnop, int *h_errnop)
{
	return _nss_netspawn_gethostbyaddr2_r(addr, len, af, host, buffer, buflen, errnop,
					      h_errnop, NULL);
}
