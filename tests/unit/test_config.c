/*
 * test_config — config_load() on good files (every option, a minimal file,
 * the shipped conf/kickmail.conf and conf/dev.conf) and on a table of bad files, each with the
 * "FILE:LINE: message" it must produce; the customer registry built from a
 * loaded configuration.  Files are written into a mkdtemp() directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/registry.h"
#include "conf_fixture.h"

static char tmpdir[PATH_MAX];

static const char *write_file(const char *name, const char *text)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    fixture_write(path, text);
    return path;
}

static struct config *load_text(const char *text, char *err, size_t errlen)
{
    return config_load(write_file("test.conf", text), err, errlen);
}

/* text as test.conf, loaded (conf_fixture.h: as map_fixture.h's conf_ok). */
static struct config *load_ok(const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/test.conf", tmpdir);
    return fixture_conf_ok(path, text);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/kmtest.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    write_file("cert.pem", "-----BEGIN CERTIFICATE-----\n");
    write_file("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    return 0;
}

static int teardown(void **state)
{
    static const char *names[] = {"test.conf", "cert.pem", "key.pem"};
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

/* ---- good files ---- */

/* Every option, none at its default.  %s: the temporary directory (twice). */
static const char full_conf[] =
    "# every option\n"
    "hostname   = \"mx.isp.example\"\n"
    "spool      = \"/srv/spool\"   // trailing comment\n"
    "control    = \"/srv/ctl.sock\"\n"
    "user       = \"kickmail\"\n"
    "postmaster = \"noc@isp.example\"\n"
    "dsn_return = full\n"
    "customer_map = \"/var/lib/kickmail/c.sqlite\"\n"
    "maildir_root = \"/srv/maildrops\"\n"
    "/* a block\n   comment */\n"
    "tls { certificate = \"%s/cert.pem\"\n key = '%s/key.pem' }\n"
    "smtp {\n"
    "  listen = {\"0.0.0.0:25\", \"[::]:26\"}\n"
    "  max_message_size = 20M\n"
    "  max_recipients = 10\n"
    "  max_connections = 11\n"
    "  max_connections_per_client = 12\n"
    "  max_bad_commands = 13\n"
    "  max_received_headers = 14\n"
    "  header_size_limit = \"1k\"\n"
    "  line_length_limit = 2000 max_data_in_memory = 100M max_data_in_memory_per_client = 30M\n"
    "  timeout = 2m auth = true auth_cleartext = true\n"
    "}\n"
    "submission { listen = {\"127.0.0.1:587\"} auth_cleartext = true }\n"
    "smtps      { listen = \"127.0.0.1:465\" }\n"
    "pop3       { listen = {\"127.0.0.1:110\"} cleartext = true apop = true timeout = 15m "
    "max_connections = 10 max_connections_per_client = 3 }\n"
    "pop3s      { listen = {\"127.0.0.1:995\"} }\n"
    "odmr       { listen = {\"[::1]:366\"} } "
    "auth { failure_delay = 2 failure_delay_max = 1m max_failures = 7 failure_window = 1h }\n"
    "radius {\n"
    "  listen = {\"0.0.0.0:1813\"}\n"
    "  client \"192.0.2.1\" { secret = 'testing123' }\n"
    "  client \"2001:db8::1\" { secret = 's${X}' }\n"
    "}\n"
    "customer \"acme\" {\n"
    "  domains       = {\"Acme.Example\", \"acme.co.uk\"}\n"
    "  recipients    = {\"Bob\", \"sales\"}\n"
    "  deliver       = \"link\"\n"
    "  port          = 2525\n"
    "  online        = \"always\"\n"
    "  link_ttl      = 6h\n"
    "  connections   = 4\n"
    "  tls           = \"encrypt\"\n"
    "  expect_helo   = \"mail.acme.example\"\n"
    "  radius_user   = \"acme-ppp\"\n"
    "  interface     = \"ippp3\"\n"
    "  secret        = 's3cret'\n"
    "  quota         = 1G\n"
    "  hold_time     = 3d\n"
    "  warn_time     = 4h\n"
    "  retry_min     = 30s\n"
    "  retry_max     = \"2h\"\n"
    "  etrn_interval = 60\n"
    "}\n"
    "customer \"beta_2\" { domains = {\"beta.example\"}\n"
    "  deliver = \"[2001:db8::25]:2525\" }\n"
    "customer \"gamma\" { domains = {\"gamma.example\"} deliver = \"192.0.2.77:25\" }\n"
    "customer \"delta\" { domains = {\"delta.example\"} deliver = maildrop secret = 'd' }\n"
    "customer \"eps\" { domains = {\"eps.example\"} deliver = pickup secret = 'e' }\n"
    "maildrop \"Alice@ISP.example\" {\n"
    "  password  = '$y$j9T$abc'\n"
    "  mode      = \"keep\"\n"
    "  keep_days = 7\n"
    "  quota     = 100M\n"
    "}\n";

static void test_full(void **state)
{
    char text[sizeof full_conf + 2 * PATH_MAX];
    snprintf(text, sizeof text, full_conf, tmpdir, tmpdir);
    struct config *c = load_ok(text);

    assert_string_equal(c->hostname, "mx.isp.example");
    assert_string_equal(c->spool, "/srv/spool");
    assert_string_equal(c->control, "/srv/ctl.sock");
    assert_string_equal(c->user, "kickmail");
    assert_string_equal(c->postmaster, "noc@isp.example");
    assert_int_equal(c->dsn_return, DSN_RETURN_FULL);
    assert_string_equal(c->customer_map, "/var/lib/kickmail/c.sqlite");
    assert_non_null(strstr(c->tls_certificate, "/cert.pem"));
    assert_non_null(strstr(c->tls_key, "/key.pem"));

    const struct smtp_conf *s = &c->smtp;
    assert_true(s->l.present);
    assert_int_equal(s->l.nlisten, 2);
    assert_string_equal(s->l.listen[0].host, "0.0.0.0");
    assert_int_equal(s->l.listen[0].port, 25);
    assert_string_equal(s->l.listen[1].host, "::");
    assert_int_equal(s->l.listen[1].port, 26);
    assert_string_equal(s->l.listen[1].text, "[::]:26");
    assert_int_equal(s->max_message_size, 20 * 1024 * 1024);
    assert_int_equal(s->max_recipients, 10);
    assert_int_equal(s->max_connections, 11);
    assert_int_equal(s->max_connections_per_client, 12);
    assert_int_equal(s->max_bad_commands, 13);
    assert_int_equal(s->max_received_headers, 14);
    assert_int_equal(s->header_size_limit, 1024);
    assert_int_equal(s->line_length_limit, 2000);
    assert_int_equal(s->max_data_in_memory, 100 * 1024 * 1024);
    assert_int_equal(s->max_data_in_memory_per_client, 30 * 1024 * 1024);
    assert_int_equal(s->timeout, 120);

    assert_true(c->smtp.auth && c->smtp.auth_cleartext && c->submission.auth_cleartext);
    assert_int_equal(c->auth.failure_delay, 2);
    assert_int_equal(c->auth.failure_delay_max, 60);
    assert_int_equal(c->auth.max_failures, 7);
    assert_int_equal(c->auth.failure_window, 3600);
    assert_true(c->submission.l.present && c->smtps.l.present && c->pop3.l.present &&
                c->pop3s.l.present && c->odmr.l.present && c->radius.present);
    assert_true(c->pop3.cleartext && c->pop3.apop);
    assert_int_equal(c->pop3.timeout, 900);
    assert_int_equal(c->pop3.max_connections, 10);
    assert_int_equal(c->pop3.max_connections_per_client, 3);
    assert_false(c->pop3s.cleartext || c->pop3s.apop);
    assert_int_equal(c->pop3s.timeout, 600);
    assert_int_equal(c->smtps.l.nlisten, 1);
    assert_int_equal(c->smtps.l.listen[0].port, 465);
    assert_string_equal(c->odmr.l.listen[0].host, "::1");
    assert_int_equal(c->nradius_clients, 2);
    assert_string_equal(c->radius_clients[0].address, "192.0.2.1");
    assert_string_equal(c->radius_clients[0].secret, "testing123");
    assert_string_equal(c->radius_clients[1].secret, "s${X}");   /* single quotes */

    assert_int_equal(c->ncustomers, 5);
    const struct customer *a = &c->customers[0];
    assert_string_equal(a->name, "acme");
    assert_int_equal(a->line, 36);
    assert_int_equal(a->ndomains, 2);
    assert_string_equal(a->domains[0], "acme.example");       /* lower-cased */
    assert_string_equal(a->domains[1], "acme.co.uk");
    assert_int_equal(a->nrecipients, 2);
    assert_string_equal(a->recipients[0], "bob");
    assert_int_equal(a->deliver, DELIVER_LINK);
    assert_null(a->deliver_host);
    assert_int_equal(a->port, 2525);
    assert_int_equal(a->online, ONLINE_ALWAYS);
    assert_int_equal(a->link_ttl, 6 * 3600);
    assert_int_equal(a->connections, 4);
    assert_int_equal(a->tls, TLSPOL_ENCRYPT);
    assert_string_equal(a->expect_helo, "mail.acme.example");
    assert_string_equal(a->radius_user, "acme-ppp");
    assert_string_equal(a->interface, "ippp3");
    assert_string_equal(a->secret, "s3cret");
    assert_int_equal(a->quota, 1024ULL * 1024 * 1024);
    assert_int_equal(a->hold_time, 3 * 86400);
    assert_int_equal(a->warn_time, 4 * 3600);
    assert_int_equal(a->retry_min, 30);
    assert_int_equal(a->retry_max, 7200);
    assert_int_equal(a->etrn_interval, 60);

    assert_int_equal(c->customers[1].deliver, DELIVER_HOST);
    assert_string_equal(c->customers[1].deliver_host, "2001:db8::25");
    assert_int_equal(c->customers[1].deliver_port, 2525);
    assert_int_equal(c->customers[1].line, 56);
    assert_string_equal(c->customers[2].deliver_host, "192.0.2.77");
    assert_int_equal(c->customers[2].deliver_port, 25);
    assert_int_equal(c->customers[3].deliver, DELIVER_MAILDROP);
    assert_int_equal(c->customers[4].deliver, DELIVER_PICKUP);

    assert_int_equal(c->nmaildrops, 1);
    assert_string_equal(c->maildrops[0].address, "alice@isp.example");
    assert_string_equal(c->maildrops[0].password, "$y$j9T$abc");
    assert_int_equal(c->maildrops[0].mode, MAILDROP_KEEP);
    assert_int_equal(c->maildrops[0].keep_days, 7);
    assert_int_equal(c->maildrops[0].quota, 100 * 1024 * 1024);
    assert_int_equal(c->maildrops[0].line, 61);
    assert_string_equal(c->maildrops[0].origin, c->path);
    assert_string_equal(c->maildir_root, "/srv/maildrops");

    char buf[128];
    config_unserved(c, buf, sizeof buf);
    assert_string_equal(buf, "");          /* odmr is served since issue 13 */
    config_free(c);
}

/* An empty file: every default. */
static void test_defaults(void **state)
{
    struct config *c = load_ok("");
    char host[256] = "", pm[300], buf[64];
    gethostname(host, sizeof host - 1);
    snprintf(pm, sizeof pm, "postmaster@%s", host);

    assert_string_equal(c->hostname, host);
    assert_string_equal(c->postmaster, pm);
    assert_string_equal(c->spool, "/var/spool/kickmail");
    assert_string_equal(c->control, "/run/kickmail/control.sock");
    assert_null(c->user);
    assert_null(c->customer_map);
    assert_string_equal(c->maildir_root, "/var/lib/kickmail/maildrops");
    assert_null(c->tls_certificate);
    assert_null(c->tls_key);
    assert_int_equal(c->dsn_return, DSN_RETURN_HEADERS);
    assert_false(c->smtp.l.present);
    assert_int_equal(c->smtp.l.nlisten, 0);
    assert_false(c->smtp.auth || c->smtp.auth_cleartext || c->submission.auth_cleartext);
    assert_int_equal(c->auth.failure_delay, 1);
    assert_int_equal(c->auth.failure_delay_max, 15);
    assert_int_equal(c->auth.max_failures, 20);
    assert_int_equal(c->auth.failure_window, 600);
    assert_false(c->submission.l.present || c->smtps.l.present || c->pop3.l.present ||
                 c->pop3s.l.present || c->odmr.l.present || c->radius.present);
    assert_false(c->pop3.cleartext || c->pop3.apop);
    assert_int_equal(c->pop3.timeout, 600);
    assert_int_equal(c->pop3.max_connections, 1000);
    assert_int_equal(c->pop3.max_connections_per_client, 50);
    assert_int_equal(c->smtp.max_message_size, 10240000);
    assert_int_equal(c->smtp.max_recipients, 1000);
    assert_int_equal(c->smtp.max_connections, 1000);
    assert_int_equal(c->smtp.max_connections_per_client, 50);
    assert_int_equal(c->smtp.max_bad_commands, 20);
    assert_int_equal(c->smtp.max_received_headers, 50);
    assert_int_equal(c->smtp.header_size_limit, 102400);
    assert_int_equal(c->smtp.line_length_limit, 65536);
    assert_int_equal(c->smtp.max_data_in_memory, 256 * 1024 * 1024);
    assert_int_equal(c->smtp.max_data_in_memory_per_client, 64 * 1024 * 1024);
    assert_int_equal(c->smtp.timeout, 300);
    assert_int_equal(c->ncustomers, 0);
    assert_int_equal(c->nmaildrops, 0);
    assert_int_equal(c->nradius_clients, 0);
    config_unserved(c, buf, sizeof buf);
    assert_string_equal(buf, "");
    config_free(c);
}

/* A minimal customer and maildrop: their defaults. */
static void test_minimal_customer(void **state)
{
    struct config *c = load_ok(
        "smtp { listen = {\"127.0.0.1:2525\"} }\n"
        "customer \"a\" { domains = {\"A.Example\"} }\n"
        "maildrop \"bob@b.example\" { password = 'x' }\n");
    const struct customer *a = &c->customers[0];
    assert_true(c->smtp.l.present);
    assert_int_equal(a->line, 2);
    assert_string_equal(a->domains[0], "a.example");
    assert_int_equal(a->nrecipients, 0);
    assert_int_equal(a->deliver, DELIVER_LINK);
    assert_int_equal(a->port, 25);
    assert_int_equal(a->online, ONLINE_DETECT);
    assert_int_equal(a->link_ttl, 12 * 3600);
    assert_int_equal(a->connections, 2);
    assert_int_equal(a->tls, TLSPOL_MAY);
    assert_null(a->expect_helo);
    assert_null(a->radius_user);
    assert_null(a->interface);
    assert_null(a->secret);
    assert_int_equal(a->quota, 500ULL * 1024 * 1024);
    assert_int_equal(a->hold_time, 5 * 86400);
    assert_int_equal(a->warn_time, 0);
    assert_int_equal(a->retry_min, 60);
    assert_int_equal(a->retry_max, 3600);
    assert_int_equal(a->etrn_interval, 5);
    assert_int_equal(c->maildrops[0].mode, MAILDROP_DELETE);
    assert_int_equal(c->maildrops[0].keep_days, 30);
    assert_int_equal(c->maildrops[0].quota, 0);        /* none */
    assert_int_equal(c->maildrops[0].line, 3);
    config_free(c);
}

/* Durations and sizes: bare, quoted, plain numbers. */
static void test_value_forms(void **state)
{
    static const struct { const char *text; long ttl; uint64_t quota; } cases[] = {
        {"link_ttl = 90 quota = 0", 90, 0},
        {"link_ttl = \"90\" quota = \"1024\"", 90, 1024},
        {"link_ttl = 5m quota = 5k", 300, 5120},
        {"link_ttl = \"2d\" quota = \"3M\"", 2 * 86400, 3ULL << 20},
        {"link_ttl = 30s quota = 2G", 30, 2ULL << 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "customer \"a\" { domains = {\"a.example\"} %s }\n", cases[i].text);
        struct config *c = load_ok(text);
        assert_int_equal(c->customers[0].link_ttl, cases[i].ttl);
        assert_int_equal(c->customers[0].quota, cases[i].quota);
        config_free(c);
    }
}

/* max_data_in_memory_per_client when not set: a quarter of
 * max_data_in_memory, but never less than max_message_size. */
static void test_data_in_memory_per_client_default(void **state)
{
    static const struct { const char *text; uint64_t want; } cases[] = {
        {"max_data_in_memory = 400M", 100ULL << 20},
        {"max_data_in_memory = 20M", 10240000},
        {"max_message_size = 30000 max_data_in_memory = 50000", 30000},
        {"max_message_size = 30000 max_data_in_memory = 200000", 50000},
        {"max_message_size = 30000 max_data_in_memory_per_client = 30000", 30000},
        {"max_data_in_memory_per_client = 1G", 1ULL << 30},   /* over the total: allowed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "smtp { listen = {\"127.0.0.1:2525\"} %s }\n",
                 cases[i].text);
        struct config *c = load_ok(text);
        assert_int_equal(c->smtp.max_data_in_memory_per_client, cases[i].want);
        config_free(c);
    }
}

static void test_shipped_files(void **state)
{
    static const char *files[] = {"conf/kickmail.conf", "conf/dev.conf"};
    const char *top = getenv("KM_TOP") ? getenv("KM_TOP") : ".";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[PATH_MAX], err[512];
        snprintf(path, sizeof path, "%s/%s", top, files[i]);
        struct config *c = config_load(path, err, sizeof err);
        if (!c)
            print_error("%s: %s\n", path, err);
        assert_non_null(c);
        assert_true(c->smtp.l.present);
        assert_true(c->ncustomers > 0);
        config_free(c);
    }
}

/* ---- bad files: each must fail with FILE:LINE: and this message ---- */

static const struct bad_case {
    const char *name, *text, *want;
} bad_cases[] = {
    /* libconfuse's own errors, with lines right after comments */
    {"unknown option", "hostname = \"a\"\nzz = 1\n", ":2: unknown option 'zz'"},
    {"unknown section", "\n\nfoo {\n}\n", ":3: unknown option 'foo'"},
    {"unknown in section", "smtp {\n listen = {\"127.0.0.1:25\"}\n bogus = 3\n}\n",
     ":3: unknown option 'bogus'"},
    {"lines after comments",
     "# one\n// two\n/* three\n four */ # more\n\nzz = 1\n", ":6: unknown option 'zz'"},
    {"comment chars in strings",
     "hostname = \"a#b\" # c\nspool = '/x//y' /* z */\nzz = 1\n",
     ":1: bad hostname 'a#b'"},
    {"multi-line string", "user = \"a\nb\"\nzz = 1\n", ":3: unknown option 'zz'"},
    {"message on one line", "\"a\nb\" = 1\n", ":2: unknown option 'a\\nb'"},
    {"unclosed section", "smtp {\n listen = {\"127.0.0.1:25\"}\n", ":1: section 'smtp' is not closed"},
    {"unclosed inner section", "radius {\n listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.1\" {\n secret = 'x'\n",
     ":3: section 'client' is not closed"},
    {"unclosed outer section", "radius {\n listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.1\" {\n secret = 'x'\n}\n",
     ":1: section 'radius' is not closed"},
    {"error before unclosed", "smtp {\n bogus = 1\n", ":2: unknown option 'bogus'"},
    {"premature end", "smtp {\n listen = {\"127.0.0.1:25\"\n", "premature end of file"},
    {"stray brace", "spool = \"/x\"\n}\n", ":2: unexpected closing brace"},
    {"unterminated comment", "spool = \"/x\"\n/* open\n", ":2: unterminated comment"},
    {"missing equals", "spool \"/x\"\n", ":1: missing equal sign after option 'spool'"},
    /* listen addresses */
    {"listen hostname", "smtp {\n listen = {\"localhost:25\"}\n}\n",
     ":2: bad listen address 'localhost:25'"},
    {"listen no port", "smtp { listen = {\"127.0.0.1\"} }\n", ":1: bad listen address"},
    {"listen port 0", "pop3 { listen = {\"127.0.0.1:0\"} }\n", ":1: bad listen address"},
    {"listen port big", "odmr { listen = {\"127.0.0.1:65536\"} }\n", ":1: bad listen address"},
    {"listen bare v6", "smtp { listen = {\"::1:25\"} }\n", ":1: bad listen address"},
    {"listen v4 in brackets", "smtp { listen = {\"[127.0.0.1]:25\"} }\n",
     ":1: bad listen address"},
    {"listen second item", "smtp { listen = {\"127.0.0.1:25\",\n \"[::1]:x\"} }\n",
     ":2: bad listen address '[::1]:x'"},
    {"listener without listen", "\npop3 { }\n", ":2: pop3 section has no listen address"},
    {"pop3s without tls", "\n\npop3s { listen = {\"127.0.0.1:995\"} }\n",
     ":3: pop3s section needs a tls section"},
    {"pop3 option elsewhere", "odmr { listen = {\"127.0.0.1:366\"} apop = true }\n",
     ":1: unknown option 'apop'"},
    /* customers */
    {"domain twice",
     "customer \"a\" {\n domains = {\"x.example\"}\n}\n\ncustomer \"b\" {\n"
     " domains = {\"y.example\", \"X.Example\"}\n}\n",
     ":5: domain 'x.example' of customer 'b' already belongs to customer 'a' (line 1)"},
    {"domain twice in one", "customer \"a\" { domains = {\"x.example\", \"x.example\"} }\n",
     ":1: domain 'x.example' listed twice in customer 'a'"},
    {"customer twice",
     "customer \"a\" { domains = {\"x.example\"} }\ncustomer \"a\" { domains = {\"y.example\"} }\n",
     ":2: customer 'a' defined twice"},
    {"customer twice, brace below",
     "customer \"a\" { domains = {\"x.example\"} }\n\ncustomer \"a\"\n{\n domains = {\"y.example\"} }\n",
     ":3: customer 'a' defined twice"},
    {"radius client twice",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.1\" { secret = 'x' }\n"
     " client \"192.0.2.1\" { secret = 'y' } }\n", ":3: client '192.0.2.1' defined twice"},
    {"radius client not an address",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"nas.example\" { secret = 'x' } }\n",
     ":2: radius client 'nas.example' is not a numeric IP address or ADDRESS/PREFIX-LENGTH"},
    {"radius prefix too long",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.0/33\" { secret = 'x' } }\n",
     ":2: radius client '192.0.2.0/33' is not"},
    {"radius prefix empty",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"2001:db8::/\" { secret = 'x' } }\n",
     ":2: radius client '2001:db8::/' is not"},
    {"radius prefix sign",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.0/+8\" { secret = 'x' } }\n",
     ":2: radius client '192.0.2.0/+8' is not"},
    {"radius same prefix written twice",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.0/24\" { secret = 'x' }\n"
     " client \"192.0.2.7/24\" { secret = 'y' } }\n",
     ":3: radius client '192.0.2.7/24' is the same as '192.0.2.0/24' (line 2)"},
    {"radius v6 address twice",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"2001:db8::1\" { secret = 'x' }\n"
     " client \"2001:DB8:0::1/128\" { secret = 'y' } }\n",
     ":3: radius client '2001:DB8:0::1/128' is the same as '2001:db8::1' (line 2)"},
    {"radius mapped network twice",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.0/24\" { secret = 'x' }\n"
     " client \"::ffff:192.0.2.0/120\" { secret = 'y' } }\n",
     ":3: radius client '::ffff:192.0.2.0/120' is the same as '192.0.2.0/24' (line 2)"},
    {"radius secret too long",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.1\" {\n secret = '"
     "0123456789012345678901234567890123456789012345678901234567890123"
     "0123456789012345678901234567890123456789012345678901234567890123X' } }\n",
     ":2: radius client '192.0.2.1': the secret is longer than 128 bytes"},
    {"radius secret empty",
     "radius { listen = {\"127.0.0.1:1813\"}\n client \"192.0.2.1\" {\n secret = '' } }\n",
     ":3: "},
    {"customer name upper", "\ncustomer \"Acme\" {\n domains = {\"x.example\"}\n}\n",
     ":2: bad customer name 'Acme'"},
    {"customer name dot", "customer \"a.b\" { domains = {\"x.example\"} }\n",
     ":1: bad customer name 'a.b'"},
    {"customer no domains", "customer \"a\" {\n}\n", ":1: customer 'a' has no domains"},
    {"domain no dot", "customer \"a\" {\n domains = {\"localhost\"}\n}\n",
     ":2: bad domain 'localhost': a domain must contain a dot"},
    {"domain bad char", "customer \"a\" { domains = {\"a_b.example\"} }\n",
     ":1: bad domain 'a_b.example'"},
    {"domain empty label", "customer \"a\" { domains = {\"a..example\"} }\n",
     ":1: bad domain 'a..example'"},
    {"domain hyphen", "customer \"a\" { domains = {\"-a.example\"} }\n",
     ":1: bad domain '-a.example'"},
    {"recipient with at", "customer \"a\" { domains = {\"a.example\"}\n recipients = {\"b@a\"} }\n",
     ":2: bad recipients entry 'b@a'"},
    {"bad duration", "customer \"a\" {\n domains = {\"a.example\"}\n link_ttl = 12x\n}\n",
     ":3: bad duration '12x' for link_ttl"},
    {"bad duration spaced", "customer \"a\" { domains = {\"a.example\"}\n hold_time = \"5 d\" }\n",
     ":2: bad duration '5 d' for hold_time"},
    {"negative duration", "customer \"a\" { domains = {\"a.example\"}\n retry_min = -1 }\n",
     ":2: bad duration '-1' for retry_min"},
    {"zero timeout", "smtp {\n timeout = 0\n}\n", ":2: timeout must be at least 1s"},
    {"bad size", "customer \"a\" { domains = {\"a.example\"}\n quota = 500X }\n",
     ":2: bad size '500X' for quota"},
    {"bad size MB", "customer \"a\" { domains = {\"a.example\"}\n quota = 5MB }\n",
     ":2: bad size '5MB' for quota"},
    {"size overflow", "smtp {\n max_message_size = 99999999999G\n}\n",
     ":2: bad size '99999999999G' for max_message_size"},
    {"size zero", "smtp {\n header_size_limit = 0\n}\n",
     ":2: header_size_limit must be at least 1"},
    {"count zero", "customer \"a\" { domains = {\"a.example\"}\n connections = 0 }\n",
     ":2: bad value '0' for connections"},
    {"count negative", "smtp {\n max_recipients = -5\n}\n", ":2: bad value '-5' for max_recipients"},
    {"port big", "customer \"a\" { domains = {\"a.example\"}\n port = 70000 }\n",
     ":2: bad value '70000' for port"},
    {"keep_days word", "maildrop \"a@b.example\" { password = 'x'\n keep_days = x }\n",
     ":2: bad value 'x' for keep_days"},
    {"deliver word", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"smtp\" }\n",
     ":2: bad deliver 'smtp'"},
    {"deliver bad name", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"mx..a.example:25\" }\n",
     ":2: bad deliver 'mx..a.example:25': bad host name: empty label"},
    {"deliver bad v4", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"192.0.2.300:25\" }\n",
     ":2: bad deliver '192.0.2.300:25': bad host name: not a numeric address"},
    {"deliver name in brackets", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"[mx.a.example]:25\" }\n",
     ":2: bad deliver '[mx.a.example]:25': not a numeric IPv6 address"},
    {"resolver name", "\nresolver = \"ns.example\"\n", ":2: bad resolver 'ns.example'"},
    {"resolver empty item", "resolver = \"127.0.0.1,,127.0.0.2\"\n",
     ":1: bad resolver '127.0.0.1,,127.0.0.2'"},
    {"resolver trailing comma", "resolver = \"127.0.0.1:53,\"\n", ":1: bad resolver '127.0.0.1:53,'"},
    {"resolver bare v6", "resolver = \"::1\"\n", ":1: bad resolver '::1'"},
    {"resolver port", "resolver = \"127.0.0.1:0\"\n", ":1: bad resolver '127.0.0.1:0'"},
    {"resolver_tries zero", "resolver_tries = 0\n", ":1: bad value '0' for resolver_tries"},
    {"resolver_tries big", "resolver_tries = 11\n", ":1: bad value '11' for resolver_tries"},
    {"resolver_timeout zero", "resolver_timeout = 0\n", ":1: resolver_timeout must be at least 1s"},
    {"resolver_timeout big", "resolver_timeout = 6m\n", ":1: resolver_timeout must be at most 300s"},
    {"deliver no port", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"mx.a.example\" }\n",
     ":2: bad deliver 'mx.a.example'"},
    {"deliver bad host", "customer \"a\" { domains = {\"a.example\"}\n deliver = \"m x:25\" }\n",
     ":2: bad deliver 'm x:25'"},
    {"online enum", "customer \"a\" { domains = {\"a.example\"}\n online = \"sometimes\" }\n",
     ":2: bad value 'sometimes' for online (\"detect\", \"always\")"},
    {"tls enum", "customer \"a\" { domains = {\"a.example\"}\n tls = yes }\n",
     ":2: bad value 'yes' for tls (\"none\", \"may\", \"encrypt\", \"verify\")"},
    {"dsn_return enum", "\ndsn_return = \"body\"\n", ":2: bad value 'body' for dsn_return"},
    {"mode enum", "maildrop \"a@b.example\" { password = 'x'\n mode = remove }\n",
     ":2: bad value 'remove' for mode (\"delete\", \"keep\")"},
    {"retry order",
     "\ncustomer \"a\" {\n domains = {\"a.example\"}\n retry_min = 2h\n retry_max = 1h\n}\n",
     ":2: customer 'a': retry_min (7200s) is greater than retry_max (3600s)"},
    {"radius_user twice",
     "customer \"a\" { domains = {\"a.example\"} radius_user = \"u\" }\n"
     "customer \"b\" { domains = {\"b.example\"} radius_user = \"u\" }\n",
     ":2: radius_user 'u' of customer 'b' already belongs to customer 'a'"},
    {"interface twice",
     "customer \"a\" { domains = {\"a.example\"} interface = \"ppp0\" }\n\n"
     "customer \"b\" { domains = {\"b.example\"} interface = \"ppp0\" }\n",
     ":3: interface 'ppp0' of customer 'b' already belongs to customer 'a'"},
    {"interface long", "customer \"a\" { domains = {\"a.example\"}\n interface = \"abcdefghijklmnop\" }\n",
     ":2: bad interface 'abcdefghijklmnop'"},
    {"maildrop needs secret", "customer \"a\" { domains = {\"a.example\"}\n deliver = maildrop }\n",
     ":1: customer 'a': deliver = \"maildrop\" needs a secret"},
    /* tls */
    {"tls cert only", "\ntls {\n certificate = \"/etc/passwd\"\n}\n",
     ":2: tls section has certificate but no key"},
    {"tls key only", "tls { key = \"/etc/passwd\" }\n", ":1: tls section has key but no certificate"},
    {"tls empty", "tls { }\n", ":1: tls section needs certificate and key"},
    {"tls unreadable", "tls {\n certificate = \"/etc/passwd\"\n key = \"/nonexistent/key.pem\"\n}\n",
     ":3: cannot read key '/nonexistent/key.pem'"},
    /* message data in memory: each bound must hold one message */
    {"data in memory below message size",
     "smtp { listen = {\"127.0.0.1:25\"}\n max_message_size = 30000\n"
     " max_data_in_memory = 20000 }\n",
     ":3: smtp: max_data_in_memory (20000) is less than max_message_size (30000)"},
    {"data per client below message size",
     "\nsmtp { listen = {\"127.0.0.1:25\"}\n max_message_size = 30000\n"
     " max_data_in_memory_per_client = 29999 }\n",
     ":4: smtp: max_data_in_memory_per_client (29999) is less than max_message_size "
     "(30000): a message of the largest size could never be received"},
    {"data per client zero", "smtp {\n max_data_in_memory_per_client = 0\n}\n",
     ":2: max_data_in_memory_per_client must be at least 1"},
    /* radius, maildrops, globals */
    {"radius client name", "radius { listen = {\"127.0.0.1:1813\"}\n client \"nas.example\" { secret = 'x' } }\n",
     ":2: radius client 'nas.example' is not a numeric IP address"},
    {"radius client secret", "radius { listen = {\"127.0.0.1:1813\"}\n\n client \"192.0.2.1\" { } }\n",
     ":3: radius client '192.0.2.1' has no secret"},
    {"maildrop no at", "\nmaildrop \"alice\" {\n password = 'x'\n}\n",
     ":2: maildrop address 'alice' has no '@'"},
    {"maildrop no password", "maildrop \"a@b.example\" { }\n", ":1: maildrop 'a@b.example' has no password"},
    {"maildrop slash", "\nmaildrop \"../x@b.example\" { password = 'x' }\n",
     ":2: bad maildrop address '../x@b.example': a '.' may not start"},
    {"maildrop slash inside", "maildrop \"a/b@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address 'a/b@b.example': the local part takes letters"},
    {"maildrop leading dot", "maildrop \".alice@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address '.alice@b.example': a '.' may not start"},
    {"maildrop double dot", "maildrop \"a..b@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address 'a..b@b.example'"},
    {"maildrop two ats", "maildrop \"a@b@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address 'a@b@b.example'"},
    {"maildrop control char", "maildrop \"a\tb@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address 'a\\tb@b.example'"},
    {"maildrop domain slash", "maildrop \"a@b.example/..\" { password = 'x' }\n",
     ":1: bad maildrop address 'a@b.example/..'"},
    {"maildrop domain no dot", "maildrop \"a@localhost\" { password = 'x' }\n",
     ":1: bad maildrop address 'a@localhost': a domain must contain a dot"},
    {"maildrop empty local", "maildrop \"@b.example\" { password = 'x' }\n",
     ":1: bad maildrop address '@b.example'"},
    {"maildrop long local",
     "maildrop \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.example\""
     " { password = 'x' }\n", ":1: bad maildrop address"},
    {"maildrop quota", "maildrop \"a@b.example\" { password = 'x'\n quota = 5X }\n",
     ":2: bad size '5X' for quota"},
    {"maildrop in a customer's domain",
     "customer \"acme\" {\n domains = {\"x.example\", \"Acme.Example\"}\n}\n\n"
     "maildrop \"bob@ACME.example\" { password = 'x' }\n",
     ":5: maildrop 'bob@acme.example': its domain 'acme.example' belongs to customer 'acme' (line 1)"},
    {"maildrop_root empty", "maildir_root = \"\"\n", ":1: maildir_root must not be empty"},
    {"maildrop twice", "maildrop \"a@b.example\" { password = 'x' }\nmaildrop \"A@B.example\" { password = 'y' }\n",
     ":2: maildrop 'a@b.example' defined twice"},
    {"postmaster no at", "postmaster = \"noc\"\n", ":1: bad postmaster 'noc'"},
    {"autoturn word", "customer \"a\" {\n domains = {\"a.example\"}\n autoturn = maybe\n}\n",
     ":3: bad value 'maybe' for autoturn (true or false)"},
    {"autoturn network", "customer \"a\" {\n domains = {\"a.example\"}\n autoturn = true\n"
     " autoturn_networks = {\"192.0.2.0/24\", \"mx.a.example\"}\n}\n",
     ":4: bad network 'mx.a.example' in autoturn_networks"},
    {"autoturn host customer", "customer \"a\" {\n domains = {\"a.example\"}\n"
     " deliver = \"192.0.2.25:25\"\n autoturn = true\n}\n",
     ":1: customer 'a': autoturn needs deliver = \"link\""},
    {"hostname bad", "\nhostname = \"mx isp\"\n", ":2: bad hostname 'mx isp'"},
    {"control too long",
     "control = \"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"\n", ":1: bad control"},
};

static void test_bad_files(void **state)
{
    const char *path = write_file("test.conf", "");
    size_t plen = strlen(path);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        char err[512] = "";
        struct config *c = load_text(b->text, err, sizeof err);
        if (c || strncmp(err, path, plen) != 0 || !strstr(err, b->want) ||
            strchr(err, '\n')) {
            print_error("case \"%s\": got %s \"%s\", want \"%s\"\n", b->name,
                        c ? "success" : "error", err, b->want);
            config_free(c);
            fail();
        }
    }
}

static void test_missing_file(void **state)
{
    char err[512], path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/nonexistent.conf", tmpdir);
    assert_null(config_load(path, err, sizeof err));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_non_null(strstr(err, ": cannot open: "));
}

/* deliver = "HOST:PORT": numeric addresses and host names (syntax only),
 * through the customer map's path (config_customer_set, the same checks). */
static void test_deliver_hosts(void **state)
{
    static const struct { const char *value, *host; int port; } good[] = {
        {"192.0.2.7:25", "192.0.2.7", 25},
        {"[2001:db8::25]:2525", "2001:db8::25", 2525},
        {"mx.acme.example:25", "mx.acme.example", 25},
        {"MX-1.Acme.Example:587", "mx-1.acme.example", 587},   /* lower-cased */
        {"mailhost:25", "mailhost", 25},
        {"1mx.9.example:25", "1mx.9.example", 25},
    };
    static const struct { const char *value, *why; } bad[] = {
        {"mx.acme.example", "bad deliver 'mx.acme.example' (want"},
        {"mx.acme.example:0", "bad deliver 'mx.acme.example:0' (want"},
        {"mx.acme.example:65536", "bad deliver 'mx.acme.example:65536' (want"},
        {"mx.acme.example.:25", "bad deliver 'mx.acme.example.:25': bad host name: empty label"},
        {"-mx.acme.example:25", "label starts or ends with '-'"},
        {"mx_1.acme.example:25", "bad character"},
        {"m x:25", "bad character"},
        {"10.0.0.256:25", "not a numeric address"},
        {"mx.example.123:25", "not a numeric address"},
        {"[mx.acme.example]:25", "not a numeric IPv6 address"},
        {"2001:db8::25:25", "bad deliver '2001:db8::25:25' (want"},
    };
    char why[1024], longname[300];
    struct customer cu;
    memset(&cu, 0, sizeof cu);
    config_customer_defaults(&cu);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (config_customer_set(&cu, "deliver", good[i].value, why, sizeof why) < 0)
            fail_msg("%s: %s", good[i].value, why);
        assert_int_equal(cu.deliver, DELIVER_HOST);
        assert_string_equal(cu.deliver_host, good[i].host);
        assert_int_equal(cu.deliver_port, good[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        assert_int_equal(config_customer_set(&cu, "deliver", bad[i].value, why, sizeof why), -1);
        if (!strstr(why, bad[i].why))
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].value, why, bad[i].why);
    }
    /* labels of 63 characters, 253 in all: the limits */
    memset(longname, 'a', sizeof longname);
    for (int i = 63; i < 253; i += 64)
        longname[i] = '.';
    strcpy(longname + 253, ":25");
    assert_int_equal(config_customer_set(&cu, "deliver", longname, why, sizeof why), 0);
    strcpy(longname + 253, "a:25");
    assert_int_equal(config_customer_set(&cu, "deliver", longname, why, sizeof why), -1);
    if (!strstr(why, "longer than 253 characters"))
        fail_msg("254 characters: %s", why);
    memset(longname, 'a', 64);
    strcpy(longname + 64, ".example:25");
    assert_int_equal(config_customer_set(&cu, "deliver", longname, why, sizeof why), -1);
    assert_non_null(strstr(why, "label longer than 63 characters"));
    config_customer_free(&cu);
}

static void test_resolver_options(void **state)
{
    struct config *c = load_ok("");
    assert_null(c->resolver);
    assert_int_equal(c->resolver_timeout, 5);
    assert_int_equal(c->resolver_tries, 2);
    config_free(c);
    c = load_ok("resolver = \"127.0.0.1:5353,192.0.2.53,[::1]:53,[2001:db8::53]\"\n"
                "resolver_timeout = 2s\nresolver_tries = 3\n");
    assert_string_equal(c->resolver, "127.0.0.1:5353,192.0.2.53,[::1]:53,[2001:db8::53]");
    assert_int_equal(c->resolver_timeout, 2);
    assert_int_equal(c->resolver_tries, 3);
    config_free(c);
}

static void test_check_helpers(void **state)
{
    assert_null(config_check_customer_name("acme-2_b"));
    assert_non_null(config_check_customer_name(""));
    assert_non_null(config_check_customer_name("Acme"));
    assert_non_null(config_check_customer_name("a b"));
    assert_null(config_check_domain("a.example"));
    assert_null(config_check_domain("Mail-1.A.Example"));
    assert_non_null(config_check_domain("example"));
    assert_non_null(config_check_domain("a.example."));
    assert_non_null(config_check_domain(".a.example"));
    assert_non_null(config_check_domain("a-.example"));
    assert_non_null(config_check_domain("a@b.example"));
}

/* ---- registry ---- */

static const char reg_conf[] =
    "customer \"acme\" {\n"
    "  domains = {\"acme.example\", \"Acme.Co.UK\"}\n"
    "  recipients = {\"bob\", \"Sales\"}\n"
    "  radius_user = \"acme-ppp\"\n"
    "  interface = \"ippp3\"\n"
    "}\n"
    "customer \"beta\" { domains = {\"beta.example\"} radius_user = \"Beta\" }\n"
    "customer \"gamma\" { domains = {\"gamma.example\"} interface = \"ppp0\" }\n";

static void test_registry_lookups(void **state)
{
    char err[256];
    struct config *c = load_ok(reg_conf);
    struct registry *r = registry_new(c, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(registry_count(r), 3);
    assert_string_equal(registry_at(r, 0)->name, "acme");
    assert_string_equal(registry_at(r, 2)->name, "gamma");
    assert_null(registry_at(r, 3));

    const struct customer *acme = registry_by_name(r, "acme");
    assert_non_null(acme);
    assert_ptr_equal(registry_by_name(r, "beta"), &c->customers[1]);
    assert_null(registry_by_name(r, "nobody"));
    assert_ptr_equal(registry_by_domain(r, "acme.example"), acme);
    assert_ptr_equal(registry_by_domain(r, "ACME.EXAMPLE"), acme);
    assert_ptr_equal(registry_by_domain(r, "acme.co.uk"), acme);
    assert_ptr_equal(registry_by_domain(r, "Acme.Co.Uk"), acme);
    assert_null(registry_by_domain(r, "sub.acme.example"));   /* exact only */
    assert_null(registry_by_domain(r, "example"));
    assert_ptr_equal(registry_by_radius_user(r, "acme-ppp"), acme);
    assert_ptr_equal(registry_by_radius_user(r, "ACME-Ppp"), acme);   /* case-insensitive */
    assert_ptr_equal(registry_by_radius_user(r, "Beta"), &c->customers[1]);
    assert_null(registry_by_radius_user(r, "nobody"));
    assert_ptr_equal(registry_by_interface(r, "ippp3"), acme);
    assert_ptr_equal(registry_by_interface(r, "ppp0"), &c->customers[2]);
    assert_null(registry_by_interface(r, "ppp1"));

    assert_true(registry_accepts_local(acme, "bob"));
    assert_true(registry_accepts_local(acme, "BOB"));
    assert_true(registry_accepts_local(acme, "sales"));
    assert_false(registry_accepts_local(acme, "alice"));
    assert_false(registry_accepts_local(acme, ""));
    assert_true(registry_accepts_local(&c->customers[1], "anyone"));
    registry_free(r);
    config_free(c);
}

/* radius clients: an address or a prefix, v4 or v6, host bits cleared; an
 * IPv4-mapped network is the IPv4 network (the listener sees mapped senders
 * as IPv4: as ::ffff:0:0/96 it could never match). */
static void test_radius_clients(void **state)
{
    struct config *c = load_ok(
        "radius {\n listen = {\"127.0.0.1:1813\"}\n"
        " client \"192.0.2.1\" { secret = 'a' }\n"
        " client \"192.0.2.77/24\" { secret = 'b' }\n"
        " client \"2001:db8::/32\" { secret = 'c' }\n"
        " client \"::ffff:198.51.100.0/120\" { secret = 'd' }\n"
        " client \"0.0.0.0/0\" { secret = 'e' }\n}\n");
    static const struct { int family, prefix; const char *net; } want[] = {
        { AF_INET, 32, "192.0.2.1" }, { AF_INET, 24, "192.0.2.0" },
        { AF_INET6, 32, "2001:db8::" }, { AF_INET, 24, "198.51.100.0" },
        { AF_INET, 0, "0.0.0.0" },
    };
    assert_int_equal(c->nradius_clients, 5);
    for (size_t i = 0; i < 5; i++) {
        const struct radius_client *rc = &c->radius_clients[i];
        unsigned char net[16] = { 0 };
        assert_int_equal(rc->family, want[i].family);
        assert_int_equal(rc->prefix, want[i].prefix);
        assert_int_equal(inet_pton(want[i].family, want[i].net, net), 1);
        assert_memory_equal(rc->net, net, want[i].family == AF_INET ? 4 : 16);
    }
    assert_string_equal(c->radius_clients[1].address, "192.0.2.77/24");
    config_free(c);
}

/* autoturn and autoturn_networks of a section (default: off, empty). */
static void test_autoturn(void **state)
{
    char nets[2048] = "", text[4096], err[512];
    struct config *c = load_ok(
        "customer \"a\" { domains = {\"a.example\"} autoturn = true\n"
        "  autoturn_networks = {\"192.0.2.0/24\", \"2001:db8::/48\", \"198.51.100.7\"} }\n"
        "customer \"b\" { domains = {\"b.example\"} autoturn = false }\n"
        "customer \"c\" { domains = {\"c.example\"} }\n");
    const struct customer *a = &c->customers[0];
    assert_int_equal(a->autoturn, 1);
    assert_int_equal(a->autoturn_networks.n, 3);
    assert_true(netlist_match(&a->autoturn_networks, "192.0.2.200", NULL));
    assert_true(netlist_match(&a->autoturn_networks, "198.51.100.7", NULL));
    assert_false(netlist_match(&a->autoturn_networks, "198.51.100.8", NULL));
    assert_int_equal(c->customers[1].autoturn, 0);
    assert_int_equal(c->customers[2].autoturn, 0);
    assert_int_equal(c->customers[2].autoturn_networks.n, 0);
    config_free(c);
    /* more than NETLIST_MAX networks: the customer's line and why */
    for (int i = 0; i <= NETLIST_MAX; i++)
        snprintf(nets + strlen(nets), sizeof nets - strlen(nets), "%s\"10.0.%d.0/24\"",
                 i ? "," : "", i);
    snprintf(text, sizeof text, "\ncustomer \"a\" {\n domains = {\"a.example\"}\n"
             " autoturn = true\n autoturn_networks = {%s}\n}\n", nets);
    assert_null(load_text(text, err, sizeof err));
    assert_non_null(strstr(err, ":2: customer 'a': autoturn_networks: more than 64 networks"));
}

/* registry_new re-checks conflicts (later sources skip config's checks). */
static void test_registry_conflicts(void **state)
{
    static const struct { const char *field, *value, *want; } cases[] = {
        {"domain", "Acme.Example", "domain 'Acme.Example' claimed by customers 'acme' and 'beta'"},
        {"name", "acme", "customer 'acme' defined twice"},
        {"radius", "acme-ppp", "radius_user 'acme-ppp' claimed by customers 'acme' and"},
        {"interface", "ippp3", "interface 'ippp3' claimed by customers 'acme' and"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        struct config *c = load_ok(reg_conf);
        struct customer *b = &c->customers[1];
        char **slot = !strcmp(cases[i].field, "domain") ? &b->domains[0]
                      : !strcmp(cases[i].field, "name") ? &b->name
                      : !strcmp(cases[i].field, "radius") ? &b->radius_user
                      : &b->interface;
        free(*slot);
        *slot = strdup(cases[i].value);
        assert_null(registry_new(c, NULL, err, sizeof err));
        if (!strstr(err, cases[i].want))
            print_error("case %s: got \"%s\"\n", cases[i].field, err);
        assert_non_null(strstr(err, cases[i].want));
        config_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_customer),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_data_in_memory_per_client_default),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_deliver_hosts),
        cmocka_unit_test(test_resolver_options),
        cmocka_unit_test(test_check_helpers),
        cmocka_unit_test(test_registry_lookups),
        cmocka_unit_test(test_registry_conflicts),
        cmocka_unit_test(test_radius_clients),
        cmocka_unit_test(test_autoturn),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
