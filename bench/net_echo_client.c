/* Load client of bench/net_echo.py: C connections to an echo server, each
   sending one message and waiting for all of it to come back before the
   next. Prints "requests seconds p50_us p99_us". One thread, epoll, so the
   client costs far less CPU than any server under test.

   usage: net_echo_client HOST PORT|unix:PATH CONNECTIONS MSG_SIZE SECONDS */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

typedef struct {
    int fd;
    size_t sent, received;
    double started;
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

int
main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    int nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    char *msg = malloc(size), *buf = malloc(size);
    memset(msg, 'x', size);
    Conn *conns = calloc(nconn, sizeof(Conn));
    int ep = epoll_create1(0);
    size_t cap = 1 << 20, nlat = 0;
    double *lat = malloc(cap * sizeof(double));
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = connect_to(argv[1], argv[2]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    double warmup_end = now() + 0.5, end = warmup_end + seconds;
    for (int i = 0; i < nconn; i++) {
        conns[i].started = now();
        ssize_t n = write(conns[i].fd, msg, size);
        conns[i].sent = n > 0 ? (size_t)n : 0;
    }
    struct epoll_event events[256];
    double t;
    while ((t = now()) < end) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; k++) {
            Conn *c = &conns[events[k].data.u32];
            ssize_t r = read(c->fd, buf, size);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                fprintf(stderr, "server closed the connection\n");
                return 1;
            }
            if (r > 0) {
                c->received += (size_t)r;
            }
            if (c->sent < size) {
                ssize_t w = write(c->fd, msg + c->sent, size - c->sent);
                if (w > 0) {
                    c->sent += (size_t)w;
                }
            }
            if (c->received >= size) {
                double done = now();
                if (done > warmup_end) {
                    if (nlat == cap) {
                        cap *= 2;
                        lat = realloc(lat, cap * sizeof(double));
                    }
                    lat[nlat++] = done - c->started;
                }
                c->received = 0;
                c->started = done;
                ssize_t w = write(c->fd, msg, size);
                c->sent = w > 0 ? (size_t)w : 0;
            }
        }
    }
    qsort(lat, nlat, sizeof(double), cmp_double);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[nlat * 99 / 100] : 0;
    printf("%zu %.3f %.1f %.1f\n", nlat, seconds, p50 * 1e6, p99 * 1e6);
    return 0;
}
