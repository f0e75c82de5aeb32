/*
 * ctl — the control socket (Unix stream, mode 0660) and its commands, used by
 * kickq.  Protocol: the client connects, sends one request line
 *     WORD TAB WORD TAB ... LF        (argv after the program's options;
 *                                      "--json" is passed as a word)
 * and the server answers with one status line, then the body, then closes:
 *     "0" LF body...                  success: kickq copies body to stdout, exit 0
 *     "1 " reason LF                  failure: kickq prints reason on stderr, exit 1
 *     "2 " reason LF                  usage error: exit 2
 * Requests are bounded (4096 bytes, 1000 words); a client that sends nothing
 * for CTL_TIMEOUT s before its request is whole is dropped, and so is the
 * one waiting longest for its request when 64 connections are open.
 */
#ifndef KM_CTL_H
#define KM_CTL_H

#include <stddef.h>

struct event_base;

/* The end of a reload asked for through ctl_hooks.reload: rc 0 (the new
 * configuration is in force), or -1 with why in err (the old one is kept). */
typedef void ctl_reload_done(int rc, const char *err, void *arg);

/* Hooks into the daemon for commands that are not about the queue. */
struct ctl_hooks {
    /* Starts a reload of the configuration (and customer map) that begins
     * after this call; calls done(rc, err, arg) exactly once, on the event
     * loop, when it has finished: possibly before returning, usually later
     * (the loading runs off the loop). */
    void (*reload)(ctl_reload_done *done, void *arg);
};

/* Binds the socket (removing a stale one; refusing anything else at path,
 * a symlink included), created with mode 0660 whatever the umask, and
 * listens.  Sets the process umask around bind(): call it before threads
 * that create files are started.  0 / -1 with err. */
int ctl_start(struct event_base *base, const char *path, const struct ctl_hooks *hooks,
              char *err, unsigned long errlen);
void ctl_stop(void);

/*
 * The command table shared by the server and kickq, so that both agree on
 * names, argument counts and options (implemented in src/ctl/ctl_cmd.c,
 * which needs nothing but the C library and links into kickq).  The daemon's
 * handler table (src/ctl/ctl_table.c) is indexed by the same enum ctl_cmd_id.
 */
#define CTL_MAX_REQUEST 4096        /* bytes, the LF included */
#define CTL_MAX_WORDS   1000
#define CTL_SESSION_MAX 63          /* bytes of a --session id (links keep 63) */
#define CTL_TIMEOUT     5           /* seconds of silence before the request is whole */

#define CTL_OPT_JSON 0x01u          /* "--json" */
#define CTL_OPT_BODY 0x02u          /* "--body" */
#define CTL_OPT_TTL  0x04u          /* "--ttl DURATION" (takes the next word) */
#define CTL_OPT_PROM 0x08u          /* "--prometheus" */
#define CTL_OPT_USER 0x10u          /* "--user NAME" (takes the next word) */
#define CTL_OPT_SESSION 0x20u       /* "--session ID" (takes the next word) */

/* The commands: their index in the command table (ctl_cmd_at, in the order
 * kickq's usage lists them) and in the daemon's handler table. */
enum ctl_cmd_id {
    CTL_CMD_STATUS, CTL_CMD_RELOAD, CTL_CMD_LIST, CTL_CMD_SUMMARY, CTL_CMD_SHAPE,
    CTL_CMD_SHOW, CTL_CMD_HOLD, CTL_CMD_RELEASE, CTL_CMD_DELETE, CTL_CMD_BOUNCE,
    CTL_CMD_KICK, CTL_CMD_LINK, CTL_CMD_LINKS, CTL_CMD_STATS,
    CTL_CMD_MAILDROPS,
    CTL_CMD_COUNT
};

struct ctl_cmd_spec {
    const char *name;
    int min_args, max_args;         /* max_args < 0: up to CTL_MAX_WORDS - 1 */
    unsigned opts;                  /* CTL_OPT_* the command accepts */
    const char *usage;              /* "list [CUSTOMER|DOMAIN] [--json]" */
};

/* The command named name, or NULL. */
const struct ctl_cmd_spec *ctl_cmd_find(const char *name);
/* The i-th command (i an enum ctl_cmd_id; for usage texts); NULL past the end. */
const struct ctl_cmd_spec *ctl_cmd_at(unsigned i);

/* A checked request: the command, its arguments (options removed), options. */
struct ctl_req {
    const struct ctl_cmd_spec *cmd;
    enum ctl_cmd_id id;             /* cmd's index: cmd == ctl_cmd_at(id) */
    int argc;
    char **argv;                    /* points into the caller's words */
    unsigned opts;                  /* CTL_OPT_* given */
    const char *ttl;                /* value of --ttl, NULL when absent */
    const char *user;               /* value of --user, NULL when absent */
    const char *session;            /* value of --session, NULL when absent */
};

/* Checks words[0..nwords) (the command first): known command, options it
 * accepts, no empty word, argument count.  An option that takes a value
 * (--ttl, --user, --session) takes the next word whatever it is (so a
 * value may start with '-'), must have one that is not empty, and may be
 * given once.  Moves the arguments to the front of words + 1, in order.
 * 0, or -1 with why filled (a usage error). */
int ctl_req_check(int nwords, char **words, struct ctl_req *req,
                  char *why, unsigned long whylen);
/* Parses a request line as the server received it: line[0..len) without its
 * LF, with line[len] == 0.  Refuses a NUL byte, drops one CR at the end,
 * splits on TAB into words (room for CTL_MAX_WORDS; more is refused), then
 * ctl_req_check.  Writes into line; req->argv points into words.  0, or -1
 * with why filled (a usage error). */
int ctl_req_parse(char *line, size_t len, char **words, struct ctl_req *req,
                  char *why, unsigned long whylen);

#endif
