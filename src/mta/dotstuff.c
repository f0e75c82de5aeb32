/*
 * dotstuff — dot-stuffing of an outgoing message (see dotstuff.h).  Trusts
 * nothing in the bytes (a message is whatever a sender sent); guarantees
 * that no line of the output but the last is "." alone, whatever the
 * pieces' boundaries, and that the output ends with CR LF "." CR LF.
 */
#include <string.h>

#include <event2/buffer.h>

#include "dotstuff.h"

void dotstuff_init(struct dotstuff *s)
{
    s->bol = 1;
    s->any = 0;
    s->last = 0;
}

void dotstuff_add(struct dotstuff *s, struct evbuffer *out, const char *p, size_t n)
{
    size_t start = 0, i = 0;
    if (n == 0)
        return;
    if (s->bol && p[0] == '.')
        evbuffer_add(out, ".", 1);
    for (;;) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl)
            break;
        i = (size_t)(nl - p) + 1;
        if (i < n && p[i] == '.') {
            evbuffer_add(out, p + start, i - start);
            evbuffer_add(out, ".", 1);
            start = i;
        }
    }
    evbuffer_add(out, p + start, n - start);
    s->bol = p[n - 1] == '\n';
    s->any = 1;
    s->last = p[n - 1];
}

void dotstuff_end(const struct dotstuff *s, struct evbuffer *out)
{
    if (s->any && s->last == '\r')
        evbuffer_add(out, "\n", 1);
    else if (s->any && s->last != '\n')
        evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, ".\r\n", 3);
}
