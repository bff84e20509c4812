/* Load client of bench/net_echo.py: C connections to an echo server, each
   sending one message and waiting for all of it to come back before the
   next. One thread, epoll, non-blocking sockets, so the client costs far
   less CPU than any server under test.

   usage: net_echo_client HOST PORT|unix:PATH CONNECTIONS MSG_SIZE SECONDS [tls]

   Prints "requests seconds p50_us p99_us all_requests": the first four are
   those of the measured SECONDS after a 0.5 s warm-up, all_requests counts
   the warm-up too (what the server did while the client ran).

   Built with -DWITH_OPENSSL (and -lssl -lcrypto), "tls" makes it speak TLS.
   The server's certificate is not verified: this is a load generator. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

typedef struct {
    int fd;
#ifdef WITH_OPENSSL
    SSL *ssl; /* NULL for plain TCP */
#endif
    size_t sent, received;
    double started;
    int waiting_to_write; /* EPOLLOUT is registered */
} Conn;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
die(const char *what)
{
    fprintf(stderr, "%s\n", what);
    exit(1);
}

static int
connect_to(const char *host, const char *port)
{
    int fd;
    if (strncmp(port, "unix:", 5) == 0) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        strncpy(un.sun_path, port + 5, sizeof(un.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
            perror("connect");
            exit(1);
        }
    }
    else {
        struct sockaddr_in in = {.sin_family = AF_INET,
                                 .sin_port = htons(atoi(port))};
        inet_pton(AF_INET, host, &in.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
            perror("connect");
            exit(1);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* conn_write and conn_read move what they can: they return the number of
   bytes moved, 0 when the socket would block, and end the client on an
   error or when the server closes the connection. */

static size_t
conn_write(Conn *c, const char *data, size_t n)
{
#ifdef WITH_OPENSSL
    if (c->ssl) {
        int w = SSL_write(c->ssl, data, (int)n);
        if (w > 0) {
            return (size_t)w;
        }
        int e = SSL_get_error(c->ssl, w);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            return 0;
        }
        die("TLS write failed");
    }
#endif
    ssize_t w = write(c->fd, data, n);
    if (w < 0 && errno != EAGAIN) {
        die("write failed");
    }
    return w > 0 ? (size_t)w : 0;
}

static size_t
conn_read(Conn *c, char *buf, size_t n)
{
#ifdef WITH_OPENSSL
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0) {
            return (size_t)r;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            return 0;
        }
        die("server closed the TLS connection");
    }
#endif
    ssize_t r = read(c->fd, buf, n);
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        die("server closed the connection");
    }
    return r > 0 ? (size_t)r : 0;
}

#ifdef WITH_OPENSSL
/* The TLS handshake, done before the socket turns non-blocking. */
static SSL *
tls_connect(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        die("TLS handshake failed");
    }
    return ssl;
}
#endif

int
main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS [tls]\n", argv[0]);
        return 2;
    }
    int tls = argc == 7 && strcmp(argv[6], "tls") == 0;
#ifdef WITH_OPENSSL
    SSL_CTX *ctx = NULL;
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        /* Non-blocking writes of large messages: SSL_write may send part
           of the buffer, and is called again with what is left. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                  | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#else
    if (tls) {
        die("built without OpenSSL: no TLS");
    }
#endif
    int nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    char *msg = malloc(size), *buf = malloc(size);
    memset(msg, 'x', size);
    Conn *conns = calloc(nconn, sizeof(Conn));
    int ep = epoll_create1(0);
    size_t cap = 1 << 20, nlat = 0, all_requests = 0;
    double *lat = malloc(cap * sizeof(double));
    for (int i = 0; i < nconn; i++) {
        Conn *c = &conns[i];
        c->fd = connect_to(argv[1], argv[2]);
#ifdef WITH_OPENSSL
        if (tls) {
            c->ssl = tls_connect(ctx, c->fd);
        }
#endif
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    double warmup_end = now() + 0.5, end = warmup_end + seconds;
    for (int i = 0; i < nconn; i++) {
        conns[i].started = now();
    }
    /* Every connection starts as if an event had come for it. */
    struct epoll_event events[256];
    int n = nconn < 256 ? nconn : 256;
    for (int k = 0; k < n; k++) {
        events[k].data.u32 = k;
    }
    double t;
    while ((t = now()) < end) {
        for (int k = 0; k < n; k++) {
            Conn *c = &conns[events[k].data.u32];
            /* Move this connection as far as it goes without blocking:
               send the rest of the message, read the echo, and once all
               of it is back, start the next message. */
            for (;;) {
                size_t moved = 0;
                if (c->sent < size) {
                    size_t w = conn_write(c, msg + c->sent, size - c->sent);
                    c->sent += w;
                    moved += w;
                }
                size_t r = conn_read(c, buf, size);
                c->received += r;
                moved += r;
                if (c->received >= size) {
                    double done = now();
                    all_requests++;
                    if (done > warmup_end) {
                        if (nlat == cap) {
                            cap *= 2;
                            lat = realloc(lat, cap * sizeof(double));
                        }
                        lat[nlat++] = done - c->started;
                    }
                    c->received = c->sent = 0;
                    c->started = done;
                }
                else if (moved == 0) {
                    break;
                }
            }
            int waiting = c->sent < size;
            if (waiting != c->waiting_to_write) {
                struct epoll_event ev = {
                    .events = EPOLLIN | (waiting ? EPOLLOUT : 0),
                    .data.u32 = (unsigned)(c - conns)};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->waiting_to_write = waiting;
            }
        }
        n = epoll_wait(ep, events, 256, 100);
    }
    qsort(lat, nlat, sizeof(double), cmp_double);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[nlat * 99 / 100] : 0;
    printf("%zu %.3f %.1f %.1f %zu\n", nlat, seconds, p50 * 1e6, p99 * 1e6,
           all_requests);
    return 0;
}
