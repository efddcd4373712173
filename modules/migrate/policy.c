/* When a migration that does not finish is given up or pushed, as pure
 * functions of time and the job's figures (KubeVirt's rules):
 *  - progress is a new low of dataRemaining; none for progressTimeout aborts
 *    (a guest that dirties memory as fast as it is copied never makes any);
 *  - past the completion budget (completionTimeoutPerGiB x GiB of memory and
 *    migrated disk) a migration switches to post-copy when that is allowed
 *    (then it always completes), else, when it was started with
 *    auto-converge (allowAutoConverge, or the operation's force), it gets as
 *    long again while QEMU throttles the guest, else it is aborted.
 * An abort leaves the VM running on its source: it is never lost. */
#include <config.h>
#include "migrate.h"

#include <stdlib.h>
#include <string.h>

void mig_clock_sample(struct mig_clock *c, int64_t remaining, int64_t now_ms)
{
    if (remaining < 0)
        return;
    if (c->best_remaining < 0 || remaining < c->best_remaining) {
        c->best_remaining = remaining;
        c->best_at_ms = now_ms;
    }
}

enum mig_action mig_clock_decide(const struct mig_clock *c)
{
    if (c->post_copy_started)
        return MIG_ACT_NONE;   /* the guest runs on the target already; it must finish */
    if (c->progress_timeout_ms > 0 && c->now_ms - c->best_at_ms >= c->progress_timeout_ms)
        return MIG_ACT_ABORT_STALLED;
    int64_t elapsed = c->now_ms - c->started_ms;
    if (c->budget_ms <= 0 || elapsed < c->budget_ms)
        return MIG_ACT_NONE;
    if (c->post_copy_allowed)
        return MIG_ACT_POSTCOPY;
    if (c->auto_converge && elapsed < 2 * c->budget_ms)
        return MIG_ACT_NONE;
    return MIG_ACT_ABORT_TIMEOUT;
}

int64_t mig_budget_ms(int64_t per_gib_s, int64_t bytes)
{
    if (per_gib_s <= 0 || bytes <= 0)
        return 0;
    /* ms = s/GiB x bytes / 2^30 x 1000, without overflowing for big guests. */
    long double ms = (long double)per_gib_s * 1000.0L * (long double)bytes / 1073741824.0L;
    return ms < 1 ? 1 : (int64_t)ms;
}

int64_t mig_quantity(const struct json_object *v)
{
    if (!v)
        return -1;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_string))
        return -1;
    const char *s = json_object_get_string((struct json_object *)v);
    char *end;
    long double n = strtold(s, &end);
    if (end == s || n < 0)
        return -1;
    static const struct { const char *suffix; long double mult; } units[] = {
        {"Ki", 1024.0L}, {"Mi", 1048576.0L}, {"Gi", 1073741824.0L},
        {"Ti", 1099511627776.0L}, {"k", 1e3L}, {"K", 1e3L}, {"M", 1e6L}, {"G", 1e9L},
        {"T", 1e12L}, {"", 1.0L},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix))
            return (int64_t)(n * units[i].mult);
    return -1;
}
