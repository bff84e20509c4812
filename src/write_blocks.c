/* Memory for the queued small writes of stream transports.

   Data the socket did not take at once is queued until it can be sent.
   Small writes are copied into blocks mapped for the purpose, rather than
   kept as the many small objects they came in: a flood of small writes for
   a peer that stopped reading then goes back to the system whole when it
   drains or the connection goes, where freed small objects stay in the
   allocator's heap and keep the process's memory resident (the default
   loop copies queued data into one bytearray for the same reason). Large
   writes are queued by reference, without a copy (see stream.c).

   A few freed blocks are kept per thread for the next queue, so that a
   connection that queues now and then does not map and unmap memory each
   time. */
#include "asyncloop.h"
#include <sys/mman.h>

#define BLOCKS_KEPT 2

static _Thread_local char *kept_blocks[BLOCKS_KEPT];
static _Thread_local int nkept;

char *
write_block_alloc(void)
{
    if (nkept > 0) {
        return kept_blocks[--nkept];
    }
    void *block = mmap(NULL, WRITE_BLOCK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) {
        PyErr_NoMemory();
        return NULL;
    }
    return block;
}

void
write_block_free(char *block)
{
    if (nkept < BLOCKS_KEPT) {
        kept_blocks[nkept++] = block;
        return;
    }
    munmap(block, WRITE_BLOCK_SIZE);
}
