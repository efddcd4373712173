/* Kubernetes-style quantities and Go-style durations.  Both are parsed with
 * exact integer arithmetic (no floating point), so "1.5Gi" is exactly
 * 1610612736 and a value that does not fit an int64 is -ERANGE rather than a
 * silently rounded number. */
#include <config.h>
#include "quantity.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Digits beyond this many in a fraction cannot change a result by more than
 * one unit; they only decide whether to round up. */
#define FRACTION_DIGITS_MAX 18

struct decimal {
    uint64_t whole;        /* the integer part */
    uint64_t frac;         /* the fraction's first frac_digits digits */
    uint64_t frac_scale;   /* 10^frac_digits */
    bool frac_rest;        /* a non-zero digit beyond those */
};

/* Parse "123", "1.5", ".5" or "5." at *p.  Returns -EINVAL without a digit,
 * -ERANGE when the integer part overflows. */
static int decimal_parse(const char **p, struct decimal *d)
{
    const char *s = *p;
    bool any = false;
    unsigned frac_digits = 0;

    memset(d, 0, sizeof *d);
    d->frac_scale = 1;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned digit = (unsigned)(*s - '0');
        if (d->whole > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        d->whole = d->whole * 10 + digit;
        any = true;
    }
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++) {
            any = true;
            if (frac_digits < FRACTION_DIGITS_MAX) {
                d->frac = d->frac * 10 + (uint64_t)(*s - '0');
                d->frac_scale *= 10;
                frac_digits++;
            } else if (*s != '0') {
                d->frac_rest = true;
            }
        }
    }
    if (!any)
        return -EINVAL;
    *p = s;
    return 0;
}

/* d * unit, rounded up to a whole number (as Kubernetes does for bytes). */
static int decimal_scale(const struct decimal *d, uint64_t unit, int64_t *out)
{
    unsigned __int128 v = (unsigned __int128)d->whole * unit;
    unsigned __int128 f = (unsigned __int128)d->frac * unit;

    v += f / d->frac_scale;
    if (f % d->frac_scale || (d->frac_rest && unit > 0))
        v += 1;
    if (v > (unsigned __int128)INT64_MAX)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t factor;
};

/* Longer suffixes first so that "Mi" wins over "M". */
static const struct unit quantity_units[] = {
    { "Ki", 1ULL << 10 }, { "Mi", 1ULL << 20 }, { "Gi", 1ULL << 30 },
    { "Ti", 1ULL << 40 }, { "Pi", 1ULL << 50 }, { "Ei", 1ULL << 60 },
    { "k", 1000ULL }, { "M", 1000000ULL }, { "G", 1000000000ULL },
    { "T", 1000000000000ULL }, { "P", 1000000000000000ULL },
    { "E", 1000000000000000000ULL },
    { "", 1 },
};

int vf_quantity_parse(const char *text, int64_t *bytes)
{
    struct decimal d;
    const char *p = text;
    int r;

    if (!text || !*text)
        return -EINVAL;
    if (*p == '+')
        p++;
    r = decimal_parse(&p, &d);
    if (r < 0)
        return r;
    for (size_t i = 0; i < sizeof quantity_units / sizeof quantity_units[0]; i++) {
        if (strcmp(p, quantity_units[i].suffix) == 0) {
            int64_t v;
            r = decimal_scale(&d, quantity_units[i].factor, &v);
            if (r < 0)
                return r;
            *bytes = v;
            return 0;
        }
    }
    return -EINVAL;
}

/* "ms" before "m" so that the longer unit wins. */
static const struct unit duration_units[] = {
    { "ms", 1ULL },
    { "s", 1000ULL },
    { "m", 60ULL * 1000 },
    { "h", 3600ULL * 1000 },
    { "d", 86400ULL * 1000 },
};

int vf_duration_parse(const char *text, int64_t *ms)
{
    const char *p = text;
    int64_t total = 0;
    struct decimal d;
    int r;

    if (!text || !*text)
        return -EINVAL;
    if (*p == '+')
        p++;
    /* A bare number is seconds, as in the seeds' plain integer timeouts. */
    {
        const char *q = p;
        r = decimal_parse(&q, &d);
        if (r == -ERANGE)
            return r;
        if (r == 0 && *q == '\0')
            return decimal_scale(&d, 1000, ms);
    }
    while (*p) {
        const struct unit *u = NULL;
        int64_t v;

        r = decimal_parse(&p, &d);
        if (r < 0)
            return r;
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
            size_t n = strlen(duration_units[i].suffix);
            if (strncmp(p, duration_units[i].suffix, n) == 0) {
                u = &duration_units[i];
                p += n;
                break;
            }
        }
        if (!u)
            return -EINVAL;
        r = decimal_scale(&d, u->factor, &v);
        if (r < 0)
            return r;
        if (v > INT64_MAX - total)
            return -ERANGE;
        total += v;
    }
    *ms = total;
    return 0;
}

void vf_quantity_format(int64_t bytes, char *buf, unsigned len)
{
    static const char *const suffixes[] = { "Ei", "Pi", "Ti", "Gi", "Mi", "Ki" };

    if (!buf || len == 0)
        return;
    if (bytes > 0) {
        for (unsigned i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            int shift = 60 - 10 * (int)i;
            int64_t unit = (int64_t)1 << shift;
            if (bytes % unit == 0) {
                snprintf(buf, len, "%lld%s", (long long)(bytes / unit), suffixes[i]);
                return;
            }
        }
    }
    snprintf(buf, len, "%lld", (long long)bytes);
}

void vf_duration_format(int64_t ms, char *buf, unsigned len)
{
    static const struct unit parts[] = {
        { "d", 86400000ULL }, { "h", 3600000ULL }, { "m", 60000ULL }, { "s", 1000ULL },
        { "ms", 1ULL },
    };
    unsigned used = 0;

    if (!buf || len == 0)
        return;
    if (ms <= 0) {
        snprintf(buf, len, ms == 0 ? "0s" : "%lldms", (long long)ms);
        return;
    }
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof parts / sizeof parts[0] && ms > 0; i++) {
        int64_t n = ms / (int64_t)parts[i].factor;
        if (n == 0)
            continue;
        ms -= n * (int64_t)parts[i].factor;
        if (used < len) {
            int w = snprintf(buf + used, len - used, "%lld%s", (long long)n, parts[i].suffix);
            if (w > 0)
                used += (unsigned)w;
        }
    }
}
