/*
 * fuzz_links_file — libFuzzer target for the link table's file parser
 * (links_image_parse of src/link/links_file.c), what links_init() runs on
 * state/links and state/links.journal at start.  Input: two bytes (little
 * endian) giving the snapshot's length (cut to what is there), then the
 * snapshot, then the journal; each copied into a buffer of exactly its size
 * so ASan catches any read past it.  Checks the contract: customers sorted,
 * each once, each a valid customer name; addresses normalised; no expiry
 * on a link down; the journal's length within the journal; and the table
 * written back as a snapshot (and as a journal over an empty snapshot of
 * its generation) parses to the same table.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "core/log.h"
#include "../../src/link/links_file.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static char *copy(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, p, n);
    return b;
}

static void same(const struct links_image *a, const struct links_image *b)
{
    CHECK(a->nlinks == b->nlinks);
    for (size_t i = 0; i < a->nlinks; i++) {
        const struct link *x = &a->links[i], *y = &b->links[i];
        CHECK(strcmp(x->customer, y->customer) == 0);
        CHECK(x->up == y->up && x->since == y->since && x->expires == y->expires);
        CHECK(x->source == y->source);
        CHECK(strcmp(x->address, y->address) == 0 && strcmp(x->session, y->session) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_init("fuzz_links_file", getenv("FUZZ_TRACE") != NULL);
        log_test_set_syslog(0);     /* bad lines are logged: thousands a second */
        quiet = 1;
    }
    if (size < 2)
        return 0;
    size_t slen = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2;
    size -= 2;
    if (slen > size)
        slen = size;
    char *snap = copy(data, slen), *journal = copy(data + slen, size - slen);
    struct links_image img, again;
    links_image_parse(snap, slen, journal, size - slen, &img);
    CHECK(img.journal_bytes <= size - slen);
    CHECK(img.gen_max >= img.gen);
    for (size_t i = 0; i < img.nlinks; i++) {
        const struct link *l = &img.links[i];
        char norm[64];
        CHECK(config_check_customer_name(l->customer) == NULL);
        CHECK(i == 0 || strcmp(img.links[i - 1].customer, l->customer) < 0);
        CHECK(l->up || l->expires == 0);
        CHECK(strnlen(l->session, sizeof l->session) < sizeof l->session);
        if (l->address[0]) {
            CHECK(links_addr_norm(l->address, norm, sizeof norm) == 0);
            CHECK(strcmp(norm, l->address) == 0);
        }
    }
    /* written back: as a snapshot, and as records over an empty snapshot */
    struct evbuffer *s = evbuffer_new(), *j = evbuffer_new();
    char hdr[64];
    uint64_t gen = img.gen_max + 1;
    evbuffer_add(s, hdr, links_snapshot_header(gen, hdr, sizeof hdr));
    evbuffer_add(j, hdr, links_journal_header(gen, hdr, sizeof hdr));
    for (size_t i = 0; i < img.nlinks; i++) {
        size_t n;
        char *line = links_line_new(img.links[i].customer, &img.links[i], &n);
        evbuffer_add(s, line, n);
        free(line);
        links_record_add(j, gen, img.links[i].customer, &img.links[i]);
    }
    links_image_parse((char *)evbuffer_pullup(s, -1), evbuffer_get_length(s), NULL, 0, &again);
    same(&img, &again);
    CHECK(again.gen == gen);
    links_image_free(&again);
    char empty[64];
    size_t elen = links_snapshot_header(gen, empty, sizeof empty);
    links_image_parse(empty, elen, (char *)evbuffer_pullup(j, -1), evbuffer_get_length(j),
                      &again);
    same(&img, &again);
    CHECK(again.journal == LINKS_J_OK && again.records == img.nlinks);
    links_image_free(&again);
    evbuffer_free(s);
    evbuffer_free(j);
    links_image_free(&img);
    free(snap);
    free(journal);
    return 0;
}
