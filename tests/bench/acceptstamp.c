/*
 * acceptstamp — the accept() half of tests/bench/sink.py: listens on HOST
 * PORT, and for each connection takes a CLOCK_MONOTONIC timestamp right
 * after accept4() returns and hands the connection and the timestamp to the
 * sink over fd 3 (a SOCK_SEQPACKET socket: 8 bytes of nanoseconds, the fd as
 * SCM_RIGHTS; a first message without a fd says it is listening).
 *
 * Why: a Python accept loop takes its timestamp only after the interpreter
 * has taken the GIL back and built the socket object, and after a few
 * seconds of idleness that took 1.2-1.9 ms on the benchmark machine (perf,
 * 2026-12-07: accept4() returned within 0.3-1.0 ms of the kick, the Python
 * timestamp came 1.2-1.9 ms later), so the kick-latency cells measured the
 * sink's own wake-up.  Trusts nothing but its arguments; exits when the sink
 * goes away.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static int hand_over(int fd, uint64_t ns)
{
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { &ns, sizeof ns };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(ctl, 0, sizeof ctl);
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof ctl;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return sendmsg(3, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int one = 1, ls;
    prctl(PR_SET_PDEATHSIG, SIGTERM);      /* not left listening without the sink */
    if (getppid() == 1)
        return 0;
    if (argc != 3 || inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
        fprintf(stderr, "usage: acceptstamp IPV4 PORT (fd 3: the sink)\n");
        return 2;
    }
    sin.sin_port = htons((uint16_t)atoi(argv[2]));
    ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(ls, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(ls, 512) < 0) {
        perror("acceptstamp: listen");
        return 1;
    }
    if (hand_over(-1, 0) < 0)
        return 1;
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("acceptstamp: accept");
            return 1;
        }
        uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        int r = hand_over(fd, ns);
        close(fd);
        if (r < 0)
            return 0;                   /* the sink is gone */
    }
}
