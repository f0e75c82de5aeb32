/*
 * format_maildrop — the output of `kickq maildrops`: a text table with
 * aligned columns, or JSON Lines, from rows the handler (cmd_maildrop.c)
 * fills from the registry's maildrops and the usage table.  Pure, like the
 * rest of ctl_format.h: unit tests build the rows by hand.
 *
 * Trusts nothing in the names it prints: in text, control characters
 * become '?'; JSON goes through ctl_fmt_json_str.  Guarantees one line per
 * row (plus the header line in text), every line ending in LF.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/util.h"
#include "ctl/ctl_format.h"

#define MD_COLS 7
static const char *const md_head[MD_COLS] = {
    "MAILDROP", "MODE", "MESSAGES", "BYTES", "QUOTA", "OLDEST", "LAST-LOGIN",
};
static const int md_right[MD_COLS] = { 0, 0, 1, 1, 1, 1, 0 };
#define MD_CELL 64              /* every cell but the name fits */

static void md_json_time(struct evbuffer *out, int64_t t)
{
    if (t > 0)
        evbuffer_add_printf(out, "%" PRId64, t);
    else
        evbuffer_add(out, "null", 4);
}

static void md_json(struct evbuffer *out, const struct ctl_maildrop_row *r, int64_t now)
{
    evbuffer_add(out, "{\"maildrop\":", 12);
    ctl_fmt_json_str(out, r->name);
    evbuffer_add(out, ",\"customer\":", 12);
    ctl_fmt_json_str(out, r->customer);
    evbuffer_add_printf(out, ",\"mode\":\"%s\",\"keep_days\":%ld,\"messages\":%" PRIu64
                        ",\"bytes\":%" PRIu64 ",\"quota\":", r->keep ? "keep" : "delete",
                        r->keep_days, r->messages, r->bytes);
    if (r->quota)
        evbuffer_add_printf(out, "%" PRIu64, r->quota);
    else
        evbuffer_add(out, "null", 4);
    evbuffer_add(out, ",\"oldest\":", 10);
    md_json_time(out, r->oldest);
    evbuffer_add_printf(out, ",\"oldest_age\":%" PRId64 ",\"last_login\":",
                        r->oldest > 0 && now > r->oldest ? now - r->oldest : (int64_t)0);
    md_json_time(out, r->last_login);
    evbuffer_add(out, "}\n", 2);
}

/* The cells of row r into cell[1..MD_COLS) (cell[0] is the name). */
static void md_cells(char cell[MD_COLS][MD_CELL], const struct ctl_maildrop_row *r,
                     int64_t now)
{
    if (r->keep)
        snprintf(cell[1], MD_CELL, "keep %ldd", r->keep_days);
    else
        snprintf(cell[1], MD_CELL, "delete");
    snprintf(cell[2], MD_CELL, "%" PRIu64, r->messages);
    snprintf(cell[3], MD_CELL, "%" PRIu64, r->bytes);
    if (r->quota)
        snprintf(cell[4], MD_CELL, "%" PRIu64, r->quota);
    else
        snprintf(cell[4], MD_CELL, "-");
    if (r->oldest > 0)
        ctl_fmt_age(cell[5], MD_CELL, now > r->oldest ? now - r->oldest : 0);
    else
        snprintf(cell[5], MD_CELL, "-");
    ctl_fmt_when(cell[6], MD_CELL, r->last_login);
}

static void md_line(struct evbuffer *out, const char *name, char cell[MD_COLS][MD_CELL],
                    const size_t *w)
{
    struct evbuffer *b = evbuffer_new();
    for (int c = 0; c < MD_COLS; c++) {
        const char *v = c ? cell[c] : name;
        const char *sep = c ? "  " : "";
        if (md_right[c])
            evbuffer_add_printf(b, "%s%*s", sep, (int)w[c], v);
        else if (c == MD_COLS - 1)
            evbuffer_add_printf(b, "%s%s", sep, v);
        else
            evbuffer_add_printf(b, "%s%-*s", sep, (int)w[c], v);
    }
    size_t len = evbuffer_get_length(b);
    char *line = (char *)evbuffer_pullup(b, -1);
    while (len && line[len - 1] == ' ')
        len--;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    evbuffer_add(out, line, len);
    evbuffer_add(out, "\n", 1);
    evbuffer_free(b);
}

void ctl_fmt_maildrops(struct evbuffer *out, const struct ctl_maildrop_row *rows, size_t n,
                       int64_t now, int json)
{
    if (json) {
        for (size_t i = 0; i < n; i++)
            md_json(out, &rows[i], now);
        return;
    }
    char (*cells)[MD_COLS][MD_CELL] = xcalloc(n ? n : 1, sizeof *cells);
    size_t w[MD_COLS];
    for (int c = 0; c < MD_COLS; c++)
        w[c] = strlen(md_head[c]);
    for (size_t i = 0; i < n; i++) {
        md_cells(cells[i], &rows[i], now);
        size_t l = strlen(rows[i].name);
        if (l > w[0])
            w[0] = l;
        for (int c = 1; c < MD_COLS; c++)
            if ((l = strlen(cells[i][c])) > w[c])
                w[c] = l;
    }
    char head[MD_COLS][MD_CELL];
    for (int c = 0; c < MD_COLS; c++)
        snprintf(head[c], MD_CELL, "%s", md_head[c]);
    md_line(out, md_head[0], head, w);
    for (size_t i = 0; i < n; i++)
        md_line(out, rows[i].name, cells[i], w);
    free(cells);
}
