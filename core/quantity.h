/* Kubernetes-style quantities ("640Mi", "50G", "1.5Gi") and durations ("150s",
 * "5m", "1h30m").  Used by the config file, module settings and object schemas. */
#ifndef VF_QUANTITY_H
#define VF_QUANTITY_H
#include <stdint.h>

/* Bytes; -EINVAL when malformed, -ERANGE on overflow. */
int vf_quantity_parse(const char *text, int64_t *bytes);
/* Milliseconds; a bare number means seconds. */
int vf_duration_parse(const char *text, int64_t *ms);
/* "640Mi"-style text of bytes, exact when a binary suffix fits. */
void vf_quantity_format(int64_t bytes, char *buf, unsigned len);
/* "1h30m"-style text of milliseconds ("250ms", "1d2h", "0s"); parses back to ms. */
void vf_duration_format(int64_t ms, char *buf, unsigned len);
#endif
