/*
 * tls_proto — the tls section's `protocols` option, parsed (pure: no
 * OpenSSL, no I/O).  Trusts nothing in the text: every token must be one of
 * the known forms, and a range that allows nothing is refused.  Guarantees
 * *min <= *max when both are set.
 */
#include <stdio.h>
#include <string.h>

#include "core/tls.h"
#include "core/util.h"

static const struct { const char *name; int version; } tls_versions[] = {
    {"TLSv1", TLS_V1_0}, {"TLSv1.1", TLS_V1_1}, {"TLSv1.2", TLS_V1_2},
    {"TLSv1.3", TLS_V1_3},
};
#define NVERSIONS (sizeof tls_versions / sizeof tls_versions[0])

const char *tls_version_name(int version)
{
    for (size_t i = 0; i < NVERSIONS; i++)
        if (tls_versions[i].version == version)
            return tls_versions[i].name;
    return "?";
}

static int tls_version_of(const char *name, size_t len)
{
    for (size_t i = 0; i < NVERSIONS; i++)
        if (strlen(tls_versions[i].name) == len && !strncmp(tls_versions[i].name, name, len))
            return tls_versions[i].version;
    return 0;
}

int tls_protocols_parse(const char *spec, int *min, int *max, char *why, size_t whylen)
{
    int lo = 0, hi = 0, exact = 0, ntok = 0;
    const char *p = spec ? spec : "";
    *min = *max = 0;
    for (;;) {
        p += strspn(p, " \t,");
        if (!*p)
            break;
        size_t n = strcspn(p, " \t,");
        int kind = !strncmp(p, ">=", 2) ? 1 : !strncmp(p, "<=", 2) ? 2 : 0;
        size_t skip = kind ? 2 : 0;
        int v = tls_version_of(p + skip, n - skip);
        if (!v)
            return util_fail(why, whylen, "protocols: unknown '%.*s' (want >=V, <=V or V, "
                             "V one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", (int)n, p);
        if (exact || (kind == 0 && ntok))
            return util_fail(why, whylen, "protocols: a single version (%s) stands alone",
                             tls_version_name(exact ? exact : v));
        if ((kind == 1 && lo) || (kind == 2 && hi))
            return util_fail(why, whylen, "protocols: two %s bounds",
                             kind == 1 ? "lower (>=)" : "upper (<=)");
        if (kind == 1)
            lo = v;
        else if (kind == 2)
            hi = v;
        else
            exact = lo = hi = v;
        ntok++;
        p += n;
    }
    if (ntok == 0)
        return util_fail(why, whylen, "protocols: empty (default \">=TLSv1.2\")");
    if (lo && hi && lo > hi)
        return util_fail(why, whylen, "protocols: %s is above %s: no protocol left",
                         tls_version_name(lo), tls_version_name(hi));
    if (!lo && hi && hi < TLS_V1_2)
        return util_fail(why, whylen, "protocols: <=%s leaves nothing above the default "
                         "minimum TLSv1.2 (add a >= bound)", tls_version_name(hi));
    *min = lo;
    *max = hi;
    return 0;
}
