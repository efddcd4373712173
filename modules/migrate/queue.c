/* The migration queue's rules, as pure functions: priority order (drain
 * above user requests above rebalancing, FIFO within a priority) and the
 * slots that parallelMigrationsPerCluster and parallelOutbound/Inbound-
 * MigrationsPerNode allow.  A waiting migration holds nothing: the counts
 * cover only migrations that have begun. */
#include <config.h>
#include "migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mig_priority mig_priority_of(const char *v)
{
    if (v && !strcmp(v, "drain"))
        return MIG_PRIO_DRAIN;
    if (v && !strcmp(v, "rebalance"))
        return MIG_PRIO_REBALANCE;
    return MIG_PRIO_USER;
}

const char *mig_priority_name(enum mig_priority p)
{
    return p == MIG_PRIO_DRAIN ? "drain" : p == MIG_PRIO_REBALANCE ? "rebalance" : "user";
}

static int by_turn(const void *a, const void *b)
{
    const struct mig_waiting *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    int c = strcmp(x->created ? x->created : "", y->created ? y->created : "");
    if (c)
        return c;
    if (x->arrival != y->arrival)
        return x->arrival < y->arrival ? -1 : 1;
    return strcmp(x->name, y->name);
}

void mig_queue_sort(struct mig_waiting *w, size_t n)
{
    if (n > 1)
        qsort(w, n, sizeof *w, by_turn);
}

void mig_counts_free(struct mig_counts *c)
{
    free(c->nodes);
    free(c->out);
    free(c->in);
    memset(c, 0, sizeof *c);
}

static long slot(struct mig_counts *c, const char *node, bool add)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->nodes[i], node))
            return (long)i;
    if (!add)
        return -1;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        const char **nodes = realloc(c->nodes, cap * sizeof *nodes);
        if (nodes)
            c->nodes = nodes;
        int64_t *out = realloc(c->out, cap * sizeof *out);
        if (out)
            c->out = out;
        int64_t *in = realloc(c->in, cap * sizeof *in);
        if (in)
            c->in = in;
        if (!nodes || !out || !in)
            return -ENOMEM;
        c->cap = cap;
    }
    c->nodes[c->n] = node;
    c->out[c->n] = c->in[c->n] = 0;
    return (long)c->n++;
}

/* The node names are borrowed: they must outlive the counts. */
int mig_counts_add(struct mig_counts *c, const char *source, const char *target)
{
    long s = slot(c, source, true), t = slot(c, target, true);
    if (s < 0 || t < 0)
        return -ENOMEM;
    c->out[s]++;
    c->in[t]++;
    c->total++;
    return 0;
}

int64_t mig_counts_out(const struct mig_counts *c, const char *node)
{
    long i = slot((struct mig_counts *)c, node, false);
    return i < 0 ? 0 : c->out[i];
}

int64_t mig_counts_in(const struct mig_counts *c, const char *node)
{
    long i = slot((struct mig_counts *)c, node, false);
    return i < 0 ? 0 : c->in[i];
}

const char *mig_limits_block(const struct mig_settings *s, int64_t cluster_limit,
                             const struct mig_counts *c, const char *source, char *buf,
                             size_t len)
{
    if (c->total >= cluster_limit) {
        snprintf(buf, len, "waiting: %lld of %lld migrations in the cluster are running "
                 "(parallelMigrationsPerCluster)", (long long)c->total, (long long)cluster_limit);
        return buf;
    }
    int64_t out = mig_counts_out(c, source);
    if (out >= s->out_per_node) {
        snprintf(buf, len, "waiting: %lld of %lld outbound migrations of node \"%s\" are running "
                 "(parallelOutboundMigrationsPerNode)", (long long)out,
                 (long long)s->out_per_node, source);
        return buf;
    }
    return NULL;
}
