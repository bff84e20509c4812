/* The ceiling of bench/net_echo.py: the same echo server as the Python ones
   (every byte read is written back), in C on libuv alone. One thread, no
   Python, TCP_NODELAY like asyncio's transports; a read is written back at
   once with uv_try_write and only what the socket does not take is copied
   into a queued write.

   usage: libuv_echo_server PORT_FILE
   Listens on 127.0.0.1, an ephemeral port, which it writes to PORT_FILE once
   it accepts connections. Runs until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_SIZE (256 * 1024)

typedef struct {
    uv_write_t req;
    char data[]; /* the bytes being written, owned by the request */
} WriteReq;

static char read_buffer[READ_SIZE]; /* one thread: each read is used up in its callback */

static void
alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(read_buffer, READ_SIZE);
}

static void
close_cb(uv_handle_t *handle)
{
    free(handle);
}

static void
write_cb(uv_write_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED) {
        uv_close((uv_handle_t *)req->handle, close_cb);
    }
    free(req);
}

static void
read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        uv_close((uv_handle_t *)stream, close_cb);
        return;
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int written = uv_try_write(stream, &out, 1);
    if (written == UV_EAGAIN) {
        written = 0;
    }
    else if (written < 0) {
        uv_close((uv_handle_t *)stream, close_cb);
        return;
    }
    if (written == nread) {
        return;
    }
    size_t rest = (size_t)nread - (size_t)written;
    WriteReq *wr = malloc(sizeof(WriteReq) + rest);
    memcpy(wr->data, buf->base + written, rest);
    out = uv_buf_init(wr->data, (unsigned int)rest);
    if (uv_write(&wr->req, stream, &out, 1, write_cb) < 0) {
        free(wr);
        uv_close((uv_handle_t *)stream, close_cb);
    }
}

static void
connection_cb(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    uv_tcp_t *client = malloc(sizeof(uv_tcp_t));
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) < 0) {
        uv_close((uv_handle_t *)client, close_cb);
        return;
    }
    uv_tcp_nodelay(client, 1);
    uv_read_start((uv_stream_t *)client, alloc_cb, read_cb);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT_FILE\n", argv[0]);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &server);
    int err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (err == 0) {
        err = uv_listen((uv_stream_t *)&server, 128, connection_cb);
    }
    if (err < 0) {
        fprintf(stderr, "listen: %s\n", uv_strerror(err));
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "%d", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fclose(f);
    return uv_run(loop, UV_RUN_DEFAULT);
}
