/*
 * io — the thin I/O layer: the only module that calls bufferevent_*.  A
 * struct io is one connected stream (TCP or Unix), plaintext or TLS, with an
 * input and an output evbuffer and one callback for everything that happens.
 * It can switch a live plaintext stream to TLS (server side: STARTTLS/STLS;
 * client side later), discarding input that arrived before the switch.
 * The callback runs only from the event loop, never from inside an io_*
 * call.  Plaintext input is bounded: while 64 KB wait unconsumed in io_in()
 * nothing more is read (reading goes on once the owner consumed some);
 * owners that must not read at all call io_pause().
 */
#ifndef KM_IO_H
#define KM_IO_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct tls_ctx;
struct io;

enum io_event {
    IO_READ,        /* new bytes in io_in() */
    IO_DRAINED,     /* output buffer fully written to the socket */
    IO_EOF,         /* peer closed (once, reading stops; plaintext still writes) */
    IO_ERROR,       /* socket or TLS error (io_error() says which) */
    IO_TIMEOUT,     /* no input, or no output progress, for the timeout */
    IO_CONNECTED,   /* io_connect() finished (client side) */
    IO_TLS_DONE,    /* TLS handshake finished */
};

typedef void io_cb(struct io *io, enum io_event ev, void *arg);

/* Wraps a connected socket; takes ownership of fd (made non-blocking).
 * NULL when out of memory (fd is then not closed). */
struct io *io_new(struct event_base *base, int fd, io_cb *cb, void *arg);
/* The same for a socket already non-blocking (accept4 with SOCK_NONBLOCK, as
 * evconnlistener accepts; socket(SOCK_NONBLOCK)): saves a system call. */
struct io *io_new_nonblocking(struct event_base *base, int fd, io_cb *cb, void *arg);
/* Frees: closes the socket (and the TLS session) at once; unsent output is lost. */
void io_free(struct io *io);
void io_set_cb(struct io *io, io_cb *cb, void *arg);

struct evbuffer *io_in(struct io *io);
struct evbuffer *io_out(struct io *io);
void io_write(struct io *io, const void *data, size_t len);
void io_printf(struct io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t io_out_pending(struct io *io);
/* 1 when nothing more can be sent: the peer ended a TLS stream (after a
 * TLS end no more is written; a plaintext peer that closed may still read
 * what is pending: a half-close). */
int io_cannot_send(const struct io *io);
/* Sends buf (drained): on a plaintext stream with nothing queued it is
 * written to the socket at once, and what the socket does not take is
 * queued.  Returns 1 when everything went out now (no IO_DRAINED follows:
 * the caller acts on the drain itself), 0 when some is queued (IO_DRAINED
 * follows).  Saves the write-event round trip (two epoll_ctl and a loop
 * turn) for every short reply. */
int io_send(struct io *io, struct evbuffer *buf);

/* Read timeout in seconds (0: none); restarted on every read.  The same
 * value is the write timeout: output pending that long without progress.
 * IO_TIMEOUT repeats every period while it lasts (an owner may ignore
 * one: reading and writing go on), in plaintext as in TLS.  A TLS
 * handshake not ended one timeout after it started (or after this call)
 * is IO_ERROR instead, once (io_error: "TLS handshake timed out"). */
void io_set_timeout(struct io *io, int secs);
/* The same in milliseconds (0: none). */
void io_set_timeout_ms(struct io *io, long ms);
void io_pause(struct io *io);       /* stop reading (backpressure) */
void io_resume(struct io *io);

/* Switches to TLS as the server: discards and returns the number of input
 * bytes already buffered (plaintext pipelined after STARTTLS), then starts the
 * handshake on the same socket; IO_TLS_DONE or IO_ERROR follows.  -1 on setup
 * failure.  Call after the "220 ready" reply has been written out (IO_DRAINED). */
long io_starttls_server(struct io *io, struct tls_ctx *ctx);
/* Implicit TLS from the first byte (smtps, pop3s). */
struct io *io_new_tls_server(struct event_base *base, int fd, struct tls_ctx *ctx,
                             io_cb *cb, void *arg);
int io_is_tls(const struct io *io);
/* "TLSv1.3 cipher=TLS_AES_256_GCM_SHA384" or "" */
const char *io_tls_info(const struct io *io, char *buf, size_t len);
/* Last error text for IO_ERROR. */
const char *io_error(const struct io *io);

/* Client side: starts a non-blocking TCP connect to a numeric host:port;
 * IO_CONNECTED or IO_ERROR follows (the caller arms its own connect timeout
 * with io_set_timeout: IO_TIMEOUT).  NULL on immediate failure, errno set:
 * EINVAL for a host that is not a numeric IPv4/IPv6 address or a bad port,
 * else the socket()/connect() error (ECONNREFUSED, ENETUNREACH...). */
struct io *io_connect(struct event_base *base, const char *host, int port,
                      io_cb *cb, void *arg);
/* Client side STARTTLS: discards buffered input, starts the handshake as
 * client (SNI = servername when not NULL and not an IP address); IO_TLS_DONE
 * or IO_ERROR follows.  Returns the number of input bytes discarded (bytes
 * the server sent after its 220: never handed to the protocol), -1 on setup
 * failure (the stream is then unchanged, still plaintext). */
int io_starttls_client(struct io *io, struct tls_ctx *ctx, const char *servername);
/* The same with a client SSL from tls_ctx_new_client_ssl(ctx, sni,
 * verify_name, cafile): for deliveries that verify the server. */
int io_starttls_client_peer(struct io *io, struct tls_ctx *ctx, const char *sni,
                            const char *verify_name, const char *cafile);
/* After IO_TLS_DONE on such a connection: tls_ssl_verified()'s verdict.
 * 0, or -1 with why. */
int io_tls_verified(const struct io *io, const char *verify_name, char *why, size_t len);

/* Peer address of a socket as text ("127.0.0.1", "::1", or "unix"). */
void io_peer_name(int fd, char *buf, size_t len, struct sockaddr_storage *ss);
/* The same for an address already known (the one accept() returned): no
 * system call.  "unknown" for NULL, a short length or another family. */
void io_addr_name(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len);

#endif
