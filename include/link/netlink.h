/*
 * netlink — the netlink watcher (Linux rtnetlink): a NETLINK_ROUTE socket
 * on the event loop, subscribed to link and IPv4/IPv6 address changes.  A
 * point-to-point address (IFA_LOCAL ours, IFA_ADDRESS the peer) on an
 * interface that is up and whose name is a customer's `interface` raises
 * that customer's link at the peer address (link_event: source netlink,
 * session = the interface name, no expiry: the kernel says when it ends).
 * The address going away, IFF_UP cleared, the interface deleted or renamed
 * take it down again, only if the link still has that session (a RADIUS or
 * kickq link of the same customer is never dropped by it).  At start, after
 * a receive-buffer overrun (ENOBUFS) and at every reload it dumps the
 * current links and addresses and reconciles: netlink links whose
 * interface no longer carries them go down.  Only messages from the kernel
 * (sender nl_pid 0) are read.  Never blocks the loop.
 */
#ifndef KM_NETLINK_H
#define KM_NETLINK_H

#include <stddef.h>

struct event_base;

/* At start (after link_event_configure()) and at every reload: enabled
 * opens the socket if it is not open and dumps (a running watcher dumps
 * again, for the new registry); !enabled closes it and takes down every
 * link netlink raised (also those left by an earlier run).  0, or -1 with
 * err (the socket could not be opened; the watcher is then off). */
int netlink_configure(struct event_base *base, int enabled, char *err, size_t errlen);

/* 1 while the socket is open. */
int netlink_running(void);

/* Closes the socket and frees the interface table; changes no link (for the
 * daemon's exit: netlink links stay as they are in the link table). */
void netlink_stop(void);

#endif
