#include <config.h>
/* When a VirtualDisk's failed volume work is tried again (vd_job.c acts on it;
 * pure functions, so that the unit tests check them without a controller).
 *
 * A failure is final when the same request can only fail the same way: we
 * asked for something malformed (-EINVAL: a volume name or format we built
 * wrong) or the node's libvirt calls the request invalid or unsupported (the
 * volume XML, an argument, a pool type that cannot upload or grow a volume).
 * Everything else is the state of a node at that moment: its libvirt
 * unreachable or the connection dropped mid-copy (RPC, system and internal
 * errors, a keepalive timeout), its pool missing or inactive, an I/O error,
 * no room.  Those pass by themselves or are fixed by an admin on the node
 * without touching the disk, so they are tried again.
 *
 * The back-off doubles from 5 s to 5 min; each wait is shortened by up to a
 * fifth, chosen by the disk's uid, so that the disks one node failure hit do
 * not all come back in the same second, while one disk's schedule stays the
 * same from run to run (a test can rely on its bounds). */
#include "vd.h"

#include <errno.h>
#include <stdio.h>
#include <libvirt/virterror.h>

#define RETRY_FIRST_S 5u
#define RETRY_MAX_S 300u

bool vf_vd_failure_transient(int rc, int lv_code)
{
    static const int final_codes[] = {
        VIR_ERR_INVALID_ARG,          VIR_ERR_XML_ERROR,         VIR_ERR_XML_DETAIL,
        VIR_ERR_CONFIG_UNSUPPORTED,   VIR_ERR_NO_SUPPORT,        VIR_ERR_ARGUMENT_UNSUPPORTED,
        VIR_ERR_OPERATION_UNSUPPORTED,
    };
    if (rc >= 0)
        return false;              /* nothing failed: nothing to try again */
    if (rc == -EINVAL)
        return false;
    for (size_t i = 0; i < sizeof final_codes / sizeof final_codes[0]; i++)
        if (lv_code == final_codes[i])
            return false;
    return true;
}

unsigned vf_vd_retry_delay(unsigned attempt, const char *seed)
{
    unsigned d = RETRY_FIRST_S;
    for (unsigned i = 1; i < attempt && d < RETRY_MAX_S; i++)
        d *= 2;
    if (d > RETRY_MAX_S)
        d = RETRY_MAX_S;
    /* FNV-1a of seed and attempt: the jitter of this disk's attempt. */
    uint32_t h = 2166136261u;
    for (const char *p = seed ? seed : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (unsigned i = 0; i < 4; i++)
        h = (h ^ ((attempt >> (8 * i)) & 0xff)) * 16777619u;
    return d - (unsigned)((uint64_t)d * (h % 201) / 1000);
}

void vf_vd_retry_message(unsigned attempt, const char *what, unsigned delay_s, char *buf,
                         size_t len)
{
    char in[32];
    if (delay_s < 60)
        snprintf(in, sizeof in, "%us", delay_s);
    else if (delay_s % 60)
        snprintf(in, sizeof in, "%um%us", delay_s / 60, delay_s % 60);
    else
        snprintf(in, sizeof in, "%um", delay_s / 60);
    snprintf(buf, len, "attempt %u failed: %s; next attempt in %s", attempt,
             what && *what ? what : "unknown error", in);
}
