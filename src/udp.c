/* The datagram transport of create_datagram_endpoint. */
#include "asyncloop.h"

int
udp_init(PyObject *Py_UNUSED(module))
{
    return 0;
}
