/*
 * ctl_cmd — the command table shared by the control socket server and kickq
 * (names, argument counts, options, usage texts), indexed by enum
 * ctl_cmd_id as the daemon's handler table is (ctl_table.c), the check of
 * a request against it (ctl_req_check), and the parse of a request line
 * the server received (ctl_req_parse: split on TAB, then checked).
 * Standard C only (no libevent, no daemon state, nothing allocated):
 * kickq's small front end is built from this file and kickq.c alone, with
 * another C library (see the Makefile).
 *
 * Trusts nothing in the words it checks; guarantees that a request it
 * accepts names a known command with options that command takes and an
 * argument count within its bounds.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static const struct ctl_cmd_spec ctl_specs[] = {
    [CTL_CMD_STATUS]  = { "status",  0, 0,  CTL_OPT_JSON, "status [--json]" },
    [CTL_CMD_RELOAD]  = { "reload",  0, 0,  0,            "reload" },
    [CTL_CMD_LIST]    = { "list",    0, 1,  CTL_OPT_JSON, "list [CUSTOMER|DOMAIN] [--json]" },
    [CTL_CMD_SUMMARY] = { "summary", 0, 0,  CTL_OPT_JSON, "summary [--json]" },
    [CTL_CMD_SHAPE]   = { "shape",   0, 1,  0,            "shape [CUSTOMER|DOMAIN]" },
    [CTL_CMD_SHOW]    = { "show",    1, 1,  CTL_OPT_BODY, "show QUEUEID [--body]" },
    [CTL_CMD_HOLD]    = { "hold",    1, 1,  0,            "hold CUSTOMER|DOMAIN|QUEUEID" },
    [CTL_CMD_RELEASE] = { "release", 1, 1,  0,            "release CUSTOMER|DOMAIN|QUEUEID" },
    [CTL_CMD_DELETE]  = { "delete",  1, -1, 0,            "delete QUEUEID..." },
    [CTL_CMD_BOUNCE]  = { "bounce",  1, -1, 0,            "bounce QUEUEID..." },
    [CTL_CMD_KICK]    = { "kick",    1, 1,  CTL_OPT_JSON, "kick CUSTOMER|DOMAIN [--json]" },
    [CTL_CMD_LINK]    = { "link",    1, 3,  CTL_OPT_TTL | CTL_OPT_USER | CTL_OPT_SESSION,
                          "link up CUSTOMER|--user NAME [ADDRESS] [--ttl DURATION] [--session ID]"
                          " | link down CUSTOMER|--user NAME [--session ID]" },
    [CTL_CMD_LINKS]   = { "links",   0, 0,  CTL_OPT_JSON, "links [--json]" },
    [CTL_CMD_STATS]   = { "stats",   0, 0,  CTL_OPT_PROM, "stats [--prometheus]" },
    [CTL_CMD_MAILDROPS] = { "maildrops", 0, 1, CTL_OPT_JSON, "maildrops [ADDRESS] [--json]" },
};
_Static_assert(sizeof ctl_specs / sizeof ctl_specs[0] == CTL_CMD_COUNT,
               "one command table entry per enum ctl_cmd_id");

const struct ctl_cmd_spec *ctl_cmd_at(unsigned i)
{
    return i < sizeof ctl_specs / sizeof ctl_specs[0] ? &ctl_specs[i] : NULL;
}

const struct ctl_cmd_spec *ctl_cmd_find(const char *name)
{
    const struct ctl_cmd_spec *c;
    for (unsigned i = 0; (c = ctl_cmd_at(i)); i++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static unsigned ctl_opt_parse(const char *w)
{
    if (strcmp(w, "--json") == 0)
        return CTL_OPT_JSON;
    if (strcmp(w, "--body") == 0)
        return CTL_OPT_BODY;
    if (strcmp(w, "--ttl") == 0)
        return CTL_OPT_TTL;
    if (strcmp(w, "--prometheus") == 0)
        return CTL_OPT_PROM;
    if (strcmp(w, "--user") == 0)
        return CTL_OPT_USER;
    if (strcmp(w, "--session") == 0)
        return CTL_OPT_SESSION;
    return 0;
}

/* Where an option's value goes, and what it is called in errors; NULL for
 * an option without a value. */
static const char **ctl_opt_value(unsigned o, struct ctl_req *req, const char **what)
{
    switch (o) {
    case CTL_OPT_TTL:     *what = "a duration"; return &req->ttl;
    case CTL_OPT_USER:    *what = "a name";     return &req->user;
    case CTL_OPT_SESSION: *what = "an id";      return &req->session;
    default:              return NULL;
    }
}

int ctl_req_check(int nwords, char **words, struct ctl_req *req,
                  char *why, unsigned long whylen)
{
    memset(req, 0, sizeof *req);
    if (nwords < 1 || !words[0][0]) {
        snprintf(why, whylen, "no command given");
        return -1;
    }
    const struct ctl_cmd_spec *c = ctl_cmd_find(words[0]);
    if (!c) {
        snprintf(why, whylen, "unknown command: %.100s", words[0]);
        return -1;
    }
    int argc = 0;
    for (int i = 1; i < nwords; i++) {
        char *w = words[i];
        if (w[0] == '-') {
            unsigned o = ctl_opt_parse(w);
            if (!(o & c->opts)) {
                snprintf(why, whylen, "%s: unknown option %.100s", c->name, w);
                return -1;
            }
            req->opts |= o;
            const char *what, **val = ctl_opt_value(o, req, &what);
            if (val) {
                if (i + 1 >= nwords || !words[i + 1][0]) {
                    snprintf(why, whylen, "%s: %s needs %s", c->name, w, what);
                    return -1;
                }
                if (*val) {
                    snprintf(why, whylen, "%s: %s given twice", c->name, w);
                    return -1;
                }
                *val = words[++i];
            }
        } else if (!w[0]) {
            snprintf(why, whylen, "%s: empty argument", c->name);
            return -1;
        } else {
            words[1 + argc++] = w;
        }
    }
    int max = c->max_args < 0 ? CTL_MAX_WORDS - 1 : c->max_args;
    if (argc < c->min_args || argc > max) {
        snprintf(why, whylen, "usage: %s", c->usage);
        return -1;
    }
    req->cmd = c;
    req->id = (enum ctl_cmd_id)(c - ctl_specs);
    req->argc = argc;
    req->argv = words + 1;
    return 0;
}

int ctl_req_parse(char *line, size_t len, char **words, struct ctl_req *req,
                  char *why, unsigned long whylen)
{
    memset(req, 0, sizeof *req);
    if (memchr(line, 0, len)) {
        snprintf(why, whylen, "bad request: NUL byte");
        return -1;
    }
    if (len && line[len - 1] == '\r')
        line[--len] = 0;
    int n = 0;
    for (char *p = line; p; ) {
        if (n == CTL_MAX_WORDS) {
            snprintf(why, whylen, "request has more than %d words", CTL_MAX_WORDS);
            return -1;
        }
        words[n++] = p;
        if ((p = strchr(p, '\t')))
            *p++ = 0;
    }
    return ctl_req_check(n, words, req, why, whylen);
}
