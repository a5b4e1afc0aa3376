// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The proxy SDK (redirect/sio.h): WSAIoctl's three redirect controls on top
 * of the callout's pinned per-socket storage map. The blob formats are the
 * stable, versioned wire format; struct callout_sock is the kernel's layout
 * and may change with the callout.
 */
#include "redirect/sio.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "callout_abi.h"
#include "callout_paths.h"
#include "sio_internal.h"

/* Records blob field offsets (the table in redirect/sio.h). */
enum records_offset {
	REC_MAGIC = 0,
	REC_VERSION = 4,
	REC_HOP_COUNT = 6,
	REC_FLOW_ID = 8,
	RECORDS_HEADER_SIZE = 16,
};

/* Context blob field offsets (the table in redirect/sio.h), used by the encoder and the decoders. */
enum context_offset {
	CTX_MAGIC = 0,
	CTX_VERSION = 4,
	CTX_SIZE = 6,
	CTX_FAMILY = 8,
	CTX_PORT = 10,
	CTX_ADDR = 16,
	CTX_PID = 32,
	CTX_UID = 36,
	CTX_COMM = 40,
	CTX_CGROUP = 56,
	CTX_RULE = 64,
	CTX_REDIRECTOR = 68,
	CTX_TIME = 72,
	CTX_DATA_LEN = 80,
	CTX_DATA = 88,
};

/* One wire format: the public header and the callout's ABI must agree. */
_Static_assert(REDIRECT_MAX_HOPS == CALLOUT_MAX_HOPS, "hop cap");
_Static_assert(REDIRECT_CONTEXT_DATA_MAX == CALLOUT_DATA_MAX, "callout data size");
_Static_assert(REDIRECT_CONTEXT_HEADER_SIZE == CTX_DATA, "context header");
_Static_assert(REDIRECT_RECORDS_SIZE(1) == CALLOUT_SDK_RECORDS_SIZE(1) &&
		       REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS) == CALLOUT_SDK_RECORDS_SIZE(CALLOUT_MAX_HOPS),
	       "records blob size");
_Static_assert(REDIRECT_CONTEXT_HEADER_SIZE + 7 == CALLOUT_SDK_CONTEXT_SIZE(7), "context blob size");
_Static_assert((int)REDIRECT_STATE_NOT_REDIRECTED == (int)CALLOUT_STATE_NOT_REDIRECTED &&
		       (int)REDIRECT_STATE_REDIRECTED_BY_SELF == (int)CALLOUT_STATE_REDIRECTED_BY_SELF &&
		       (int)REDIRECT_STATE_REDIRECTED_BY_OTHER == (int)CALLOUT_STATE_REDIRECTED_BY_OTHER &&
		       (int)REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF ==
			       (int)CALLOUT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF,
	       "redirect states");
_Static_assert(REDIRECT_HOP_RECORDS_MISSING == CALLOUT_FLAG_RECORDS_MISSING, "hop flags");
_Static_assert(CALLOUT_COMM_LEN == CTX_CGROUP - CTX_COMM, "comm size");

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Instance name from the environment: [A-Za-z0-9._-]{1,64}, never "." or "..". */
static int instance_name(char *out, size_t size)
{
	const char *name = getenv(CALLOUT_INSTANCE_ENV);
	size_t n;

	if (!name || !*name)
		name = CALLOUT_DEFAULT_INSTANCE;
	n = strlen(name);
	if (n >= size || n > CALLOUT_INSTANCE_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	memcpy(out, name, n + 1);
	return 0;
}

/* Set by the process that owns the callout (redirect_sio_use_map); -1: find the pin. */
static _Atomic int g_own_map = -1;

int redirect_sio_use_map(int map_fd)
{
	g_own_map = map_fd;
	return 0;
}

/*
 * Open one of the live instance's pinned maps: a file descriptor (the caller closes
 * it unless *borrowed), or a negative errno (EOPNOTSUPP when no callout holds the instance lock, EACCES without
 * administrator rights).
 */
int sio_open_pinned_map(const char *pin_name, int *borrowed)
{
	char name[CALLOUT_INSTANCE_MAX + 1], path[256];
	int lock, fd, err;

	*borrowed = 0;

	err = instance_name(name, sizeof(name));
	if (err)
		return -EOPNOTSUPP;
	snprintf(path, sizeof(path), "%s/%s.lock", CALLOUT_RUN_DIR, name);
	lock = open(path, O_RDONLY | O_CLOEXEC);
	if (lock < 0)
		return errno == EACCES || errno == EPERM ? -EACCES : -EOPNOTSUPP;
	/* The loader holds LOCK_EX while it lives; getting LOCK_SH means nobody does. */
	if (flock(lock, LOCK_SH | LOCK_NB) == 0) {
		close(lock);
		return -EOPNOTSUPP;
	}
	close(lock);
	snprintf(path, sizeof(path), "%s/%s/%s", CALLOUT_BPFFS_DIR, name, pin_name);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = errno;
		return err == EACCES || err == EPERM ? -EACCES : -EOPNOTSUPP;
	}
	return fd;
}

int sio_open_socks_map(int *borrowed)
{
	int fd = g_own_map;

	if (fd >= 0) {
		*borrowed = 1;
		return fd;
	}
	return sio_open_pinned_map(CALLOUT_SOCKS_PIN_NAME, borrowed);
}

size_t sio_encode_records(const struct callout_records *r, unsigned char *out)
{
	unsigned n = r->hop_count > REDIRECT_MAX_HOPS ? REDIRECT_MAX_HOPS : r->hop_count;

	put32(out + REC_MAGIC, REDIRECT_RECORDS_MAGIC);
	put16(out + REC_VERSION, REDIRECT_RECORDS_VERSION);
	put16(out + REC_HOP_COUNT, (uint16_t)n);
	put64(out + REC_FLOW_ID, r->flow_id);
	for (unsigned i = 0; i < n; i++) {
		unsigned char *h = out + RECORDS_HEADER_SIZE + 8 * i;

		put32(h, r->hops[i].redirector_id);
		h[4] = r->hops[i].state;
		h[5] = r->hops[i].flags;
		put16(h + 6, 0);
	}
	return REDIRECT_RECORDS_SIZE(n);
}

static size_t encode_context(const struct callout_context *c, unsigned char *out)
{
	uint16_t d = c->data_len > REDIRECT_CONTEXT_DATA_MAX ? REDIRECT_CONTEXT_DATA_MAX : c->data_len;
	size_t size = REDIRECT_CONTEXT_HEADER_SIZE + d;

	memset(out, 0, size);
	put32(out + CTX_MAGIC, REDIRECT_CONTEXT_MAGIC);
	put16(out + CTX_VERSION, REDIRECT_CONTEXT_VERSION);
	put16(out + CTX_SIZE, (uint16_t)size);
	put16(out + CTX_FAMILY, c->family);
	memcpy(out + CTX_PORT, &c->port, 2);
	memcpy(out + CTX_ADDR, c->addr, 16);
	put32(out + CTX_PID, c->pid);
	put32(out + CTX_UID, c->uid);
	memcpy(out + CTX_COMM, c->comm, CALLOUT_COMM_LEN);
	put64(out + CTX_CGROUP, c->cgroup_id);
	put32(out + CTX_RULE, c->rule_id);
	put32(out + CTX_REDIRECTOR, c->redirector_id);
	put64(out + CTX_TIME, c->time_boot_ns);
	put16(out + CTX_DATA_LEN, d);
	memcpy(out + CTX_DATA, c->data, d);
	return size;
}

int redirect_records_decode(const void *records, size_t size, struct redirect_records_info *info)
{
	const unsigned char *p = records;
	unsigned n;

	if (!records || !info) {
		errno = EFAULT;
		return -1;
	}
	if (size < RECORDS_HEADER_SIZE || get32(p + REC_MAGIC) != REDIRECT_RECORDS_MAGIC ||
	    get16(p + REC_VERSION) != REDIRECT_RECORDS_VERSION)
		goto invalid;
	n = get16(p + REC_HOP_COUNT);
	if (n < 1 || n > REDIRECT_MAX_HOPS || size != REDIRECT_RECORDS_SIZE(n) || get64(p + REC_FLOW_ID) == 0)
		goto invalid;
	memset(info, 0, sizeof(*info));
	info->flow_id = get64(p + REC_FLOW_ID);
	info->hop_count = n;
	for (unsigned i = 0; i < n; i++) {
		const unsigned char *h = p + RECORDS_HEADER_SIZE + 8 * i;

		if (get32(h) == 0 || h[4] > REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF ||
		    (h[5] & ~REDIRECT_HOP_RECORDS_MISSING) || get16(h + 6) != 0)
			goto invalid;
		info->hops[i].redirector_id = get32(h);
		info->hops[i].state = h[4];
		info->hops[i].flags = h[5];
	}
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}

/* Header check shared by the context decoders. */
static const unsigned char *context_checked(const void *context, size_t size)
{
	const unsigned char *p = context;

	if (!context) {
		errno = EFAULT;
		return NULL;
	}
	if (size < REDIRECT_CONTEXT_HEADER_SIZE || get32(p + CTX_MAGIC) != REDIRECT_CONTEXT_MAGIC ||
	    get16(p + CTX_VERSION) != REDIRECT_CONTEXT_VERSION || get16(p + CTX_SIZE) != size ||
	    get16(p + CTX_DATA_LEN) > REDIRECT_CONTEXT_DATA_MAX || size != REDIRECT_CONTEXT_HEADER_SIZE + get16(p + CTX_DATA_LEN)) {
		errno = EINVAL;
		return NULL;
	}
	return p;
}

int redirect_context_destination(const void *context, size_t size, struct sockaddr_storage *destination,
				 socklen_t *length)
{
	const unsigned char *p = context_checked(context, size);

	if (!p)
		return -1;
	if (!destination || !length) {
		errno = EFAULT;
		return -1;
	}
	memset(destination, 0, sizeof(*destination));
	if (get16(p + CTX_FAMILY) == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)destination;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_port, p + CTX_PORT, 2);
		memcpy(&sin->sin_addr, p + CTX_ADDR, 4);
		*length = sizeof(*sin);
	} else if (get16(p + CTX_FAMILY) == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)destination;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_port, p + CTX_PORT, 2);
		memcpy(&sin6->sin6_addr, p + CTX_ADDR, 16);
		*length = sizeof(*sin6);
	} else {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int redirect_context_pid(const void *context, size_t size, pid_t *pid)
{
	const unsigned char *p = context_checked(context, size);

	if (!p)
		return -1;
	if (!pid) {
		errno = EFAULT;
		return -1;
	}
	*pid = (pid_t)get32(p + CTX_PID);
	return 0;
}

int redirect_context_uid(const void *context, size_t size, uid_t *uid)
{
	const unsigned char *p = context_checked(context, size);

	if (!p)
		return -1;
	if (!uid) {
		errno = EFAULT;
		return -1;
	}
	*uid = (uid_t)get32(p + CTX_UID);
	return 0;
}

int redirect_context_comm(const void *context, size_t size, char *comm, size_t comm_size)
{
	const unsigned char *p = context_checked(context, size);

	if (!p)
		return -1;
	if (!comm) {
		errno = EFAULT;
		return -1;
	}
	if (comm_size < CALLOUT_COMM_LEN) {
		errno = EINVAL;
		return -1;
	}
	memcpy(comm, p + CTX_COMM, CALLOUT_COMM_LEN);
	comm[CALLOUT_COMM_LEN - 1] = '\0';
	return 0;
}

const char *redirect_state_name(int state)
{
	switch (state) {
	case REDIRECT_STATE_NOT_REDIRECTED: return "NOT_REDIRECTED";
	case REDIRECT_STATE_REDIRECTED_BY_SELF: return "REDIRECTED_BY_SELF";
	case REDIRECT_STATE_REDIRECTED_BY_OTHER: return "REDIRECTED_BY_OTHER";
	case REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF: return "PREVIOUSLY_REDIRECTED_BY_SELF";
	default: return "?";
	}
}

/*
 * Not a socket: ENOTSOCK before anything else. The engine that owns the map skips the fstat():
 * its map lookup reports ENOTSOCK and EBADF itself (lookup_accepted() passes them on). SET
 * needs no fstat() either: settable_socket()'s getsockopt() reports them first.
 */
static int check_socket(int sock)
{
	struct stat st;

	if (g_own_map >= 0)
		return 0;
	if (fstat(sock, &st) != 0)
		return EBADF;
	return S_ISSOCK(st.st_mode) ? 0 : ENOTSOCK;
}

/* The accepted socket's entry: 0, or ENOENT, ENOTSOCK, EBADF, EACCES, EOPNOTSUPP. */
static int lookup_accepted(int sock, struct callout_sock *value)
{
	int map, borrowed, err = 0;

	map = sio_open_socks_map(&borrowed);
	if (map < 0)
		return -map;
	if (bpf_map_lookup_elem(map, &sock, value) != 0)
		err = errno == ENOTSOCK || errno == EBADF ? errno : ENOENT;
	if (!borrowed)
		close(map);
	if (err)
		return err;
	/* Only a redirector's accepted socket carries what the callout attached. */
	return value->role & CALLOUT_ROLE_ACCEPTED ? 0 : ENOENT;
}

/* One QUERY answer's blob (records or context), encoded: 0 and its size in *need, or ENOENT. */
static int encode_answer(const struct callout_sock *value, int records, unsigned char *blob, size_t *need)
{
	if (records) {
		if (!(value->role & CALLOUT_ROLE_RECORDS) || value->records.hop_count == 0)
			return ENOENT;
		*need = sio_encode_records(&value->records, blob);
	} else {
		if (!(value->role & CALLOUT_ROLE_CONTEXT))
			return ENOENT;
		*need = encode_context(&value->context, blob);
	}
	return 0;
}

/* The records or the context the callout attached, as the QUERY blobs; EINVAL and the size when out is short. */
int sio_copy_blob(const struct callout_sock *value, int records, void *out, size_t out_size, size_t *bytes)
{
	unsigned char blob[REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX];
	int err = encode_answer(value, records, blob, bytes);

	if (err)
		return err;
	if (out_size < *bytes)
		return EINVAL;
	memcpy(out, blob, *bytes);
	return 0;
}

static int query(int sock, uint32_t code, void *out, size_t out_size, size_t *bytes)
{
	struct callout_sock value;
	int err = lookup_accepted(sock, &value);

	return err ? err : sio_copy_blob(&value, code == SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, out, out_size, bytes);
}

int redirect_query_both(int sock, void *records, size_t records_size, size_t *records_bytes, void *context,
			size_t context_size, size_t *context_bytes)
{
	struct callout_sock value;
	size_t rb = 0, cb = 0;
	int err;

	if (!records_bytes || !context_bytes || (!records && records_size) || (!context && context_size)) {
		errno = EFAULT;
		return -1;
	}
	/* As redirect_ioctl(): a caller that does not own the map learns ENOTSOCK before anything else. */
	err = check_socket(sock);
	if (!err)
		err = lookup_accepted(sock, &value);
	if (!err) {
		/* Both encoded first: a failure writes neither buffer. */
		unsigned char rblob[REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS)];
		unsigned char cblob[REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX];

		err = encode_answer(&value, 1, rblob, &rb);
		if (!err)
			err = encode_answer(&value, 0, cblob, &cb);
		if (!err && (records_size < rb || context_size < cb))
			err = EINVAL;
		if (!err) {
			memcpy(records, rblob, rb);
			memcpy(context, cblob, cb);
		}
	}
	*records_bytes = rb;
	*context_bytes = cb;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

static int dispatch(int sock, uint32_t code, const void *in, size_t in_size, void *out, size_t out_size,
		    size_t *bytes)
{
	int err;

	/* The seed: SET's output buffer is unused and its size must be zero. */
	if (code == SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS && (out || out_size))
		return EINVAL;
	if ((!in && in_size) || (!out && out_size))
		return EFAULT;
	if (code != SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS && code != SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT &&
	    code != SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS)
		return EINVAL;
	if (code == SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS)
		return sio_set_records(sock, in, in_size, bytes);
	err = check_socket(sock);
	return err ? err : query(sock, code, out, out_size, bytes);
}

int redirect_ioctl(int sock, uint32_t control_code, const void *in, size_t in_size, void *out, size_t out_size,
		   size_t *bytes_returned, struct redirect_overlapped *overlapped, redirect_completion_routine completion)
{
	size_t bytes = 0;
	int err;

	if (!bytes_returned && !completion) {
		errno = EFAULT;
		return -1;
	}
	err = dispatch(sock, control_code, in, in_size, out, out_size, &bytes);
	if (bytes_returned)
		*bytes_returned = bytes;
	if (overlapped) {
		overlapped->error = err;
		overlapped->bytes = bytes;
	}
	if (completion) {
		/* Every request completes at once; the routine gets the result. */
		completion(err, bytes, overlapped, 0);
		return 0;
	}
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}
