/* Output for humans and scripts: kubectl-shaped tables, AGE, YAML, JSON,
 * jsonpath and describe.  Everything here is pure (no I/O but the FILE it is
 * given) so that the unit tests can pin the formats down. */
#ifndef VF_CLI_RENDER_H
#define VF_CLI_RENDER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <json-c/json.h>

/* A printer column from discovery: header and dotted path ("status.phase"). */
struct vf_column {
    char *header;
    char *path;
};

/* kubectl's AGE: 5s, 3m20s, 79m, 2h5m, 23h, 6d1h, 45d, 3y20d.  Negative
 * durations within clock skew (1s) print 0s, larger ones <invalid>. */
void vf_render_age(time_t now, time_t then, char *buf, size_t len);

/* RFC 3339 ("2024-05-01T10:00:00Z", fractions and +hh:mm offsets allowed).
 * Returns 0, or -1 when s is not such a timestamp. */
int vf_render_parse_time(const char *s, time_t *out);

/* The value at a path like "status.conditions[0].type" or ".metadata.name";
 * "\." escapes a dot inside a key (label keys).  Borrowed; NULL when absent. */
struct json_object *vf_render_lookup(struct json_object *obj, const char *path);

/* A value as a table cell (malloc'd): strings as is, scalars as JSON, arrays
 * of scalars comma-joined, absent as "".  Control characters become '?' so a
 * status message cannot move the cursor or forge rows. */
char *vf_render_cell(struct json_object *v);

/* "a=b,c=d" in the server's order, or "<none>" (malloc'd). */
char *vf_render_labels(struct json_object *obj);

/* ---- tables ---------------------------------------------------------- */

struct vf_table;

/* Columns separated by three spaces, each as wide as its widest cell so far;
 * the last column is not padded. */
struct vf_table *vf_table_new(size_t ncols, const char *const *headers);
/* NAME, the kind's columns, LABELS when wide, AGE. */
struct vf_table *vf_table_for_kind(const struct vf_column *cols, size_t ncols, bool wide);
/* Cells are copied.  Exactly ncols of them. */
void vf_table_add_row(struct vf_table *t, const char *const *cells);
/* One row for an object in a table made by vf_table_for_kind. */
void vf_table_add_object(struct vf_table *t, struct json_object *obj, const struct vf_column *cols,
                         size_t ncols, bool wide, time_t now);
/* Print the header (the first time only) and the rows added since the last
 * flush.  Widths only grow, so rows printed by a watch stay aligned with the
 * table above them unless a cell is wider than any seen before. */
void vf_table_flush(struct vf_table *t, FILE *out);
size_t vf_table_pending(const struct vf_table *t);
void vf_table_free(struct vf_table *t);

/* ---- documents ------------------------------------------------------- */

/* Pretty JSON without escaped slashes, then a newline. */
int vf_render_json(FILE *out, struct json_object *obj);

/* One YAML document (no "---").  Strings that would read back as another type
 * (true, 1, null, 0x10, "") are quoted, so the output applies back unchanged. */
int vf_render_yaml(FILE *out, struct json_object *obj);

/* kubectl's -o jsonpath: runs a template parsed by vf_jsonpath_parse
 * (jsonpath.h) on obj.  The values of one {EXPR} print separated by a space;
 * strings raw, JSON null and absent fields as nothing, other values as compact
 * JSON.  Returns 0, or -1 when out of memory or out cannot be written. */
struct vf_jsonpath;
int vf_render_jsonpath(FILE *out, struct json_object *obj, const struct vf_jsonpath *tmpl);

/* describe: Name, Kind, Labels, Created, ..., Spec, Status with Conditions. */
int vf_render_describe(FILE *out, struct json_object *obj, time_t now);
#endif
