/*
 * listen — binding TCP listeners from configuration addresses, shared by
 * every protocol server (SMTP now; POP3, ODMR later).
 */
#ifndef KM_LISTENER_H
#define KM_LISTENER_H

#include <stddef.h>

struct listen_addr;

/* socket + SO_REUSEADDR (+ IPV6_V6ONLY for v6) + bind + listen(backlog SOMAXCONN),
 * non-blocking, close-on-exec.  Returns the fd, or -1 with err filled. */
int listen_bind(const struct listen_addr *a, char *err, size_t errlen);

#endif
