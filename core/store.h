/* The durable resource store: SQLite in WAL mode, one transaction per write.
 *
 * Every object is (kind, name) -> JSON body.  Each write gets the next store-wide
 * resourceVersion (monotonic, never reused, survives restarts) and appends a row
 * to an event log in the same transaction, so watches can replay from a
 * resourceVersion.  The event log keeps the newest `event_history` entries; a
 * watch from an older resourceVersion is refused with -ENODATA (HTTP 410 Gone).
 *
 * The store knows nothing of schemas: objects.c validates before writing.  It
 * owns metadata: uid, resourceVersion, generation, creationTimestamp,
 * deletionTimestamp, and it applies the finalizer rule (delete of an object with
 * metadata.finalizers only sets deletionTimestamp; the update that empties
 * finalizers of such an object removes it).
 *
 * Loop thread only (no locking): the daemon's single event loop thread owns it.
 */
#ifndef VF_STORE_H
#define VF_STORE_H
#include <stdint.h>
#include <virtfleet/module.h>

struct vf_store;

struct vf_store_options {
    int event_history;   /* events kept for watch replay; 0: default 10000 */
    int synchronous_full;/* 1: PRAGMA synchronous=FULL (survives power loss), 0: NORMAL */
};

/* Opens or creates the database at path (parent directory must exist). */
int vf_store_open(const char *path, const struct vf_store_options *opts, struct vf_store **out,
                  struct vf_error *err);
void vf_store_close(struct vf_store *st);

/* The resourceVersion of the newest write (0 for an empty store). */
int64_t vf_store_revision(const struct vf_store *st);

/* -ENOENT when absent.  *out is a new reference. */
int vf_store_get(struct vf_store *st, const char *kind, const char *name, struct json_object **out);

/* *items: a new JSON array of the kind's objects sorted by name; *revision (may
 * be NULL): the store revision the list is consistent with. */
int vf_store_list(struct vf_store *st, const char *kind, struct json_object **items,
                  int64_t *revision);
/* The stored JSON text of a kind's objects, sorted by name and joined with
 * commas (the elements of a JSON array, without brackets): unfiltered lists
 * need no parsing and re-serialising.  *text: malloc'd; *revision as above. */
int vf_store_list_text(struct vf_store *st, const char *kind, char **text, size_t *len,
                       int64_t *revision);
/* Number of objects of a kind (NULL: all kinds). */
int64_t vf_store_count(struct vf_store *st, const char *kind);

/* Create: obj must have metadata.name or metadata.generateName (a random
 * 5-character suffix of [a-z0-9] is appended, retried on collision).  Sets uid
 * (random v4 UUID), resourceVersion, generation = 1, creationTimestamp (RFC 3339
 * UTC).  Keeps .status when present.  -EEXIST (409 AlreadyExists).  *out (may be
 * NULL) receives the stored object. */
int vf_store_create(struct vf_store *st, const char *kind, const struct json_object *obj,
                    struct json_object **out, struct vf_error *err);

/* Replace spec, labels, annotations, finalizers of an existing object; status is
 * kept from the stored copy.  When obj's metadata.resourceVersion is present and
 * differs from the stored one: -ESTALE (409 Conflict).  generation increases when
 * .spec changed.  -ENOENT (404) when absent.  Clearing the last finalizer of an
 * object marked for deletion deletes it (*out then gets the final copy). */
int vf_store_update(struct vf_store *st, const char *kind, const struct json_object *obj,
                    struct json_object **out, struct vf_error *err);

/* Replace .status only.  expected_rv > 0 checks the resourceVersion (-ESTALE). */
int vf_store_update_status(struct vf_store *st, const char *kind, const char *name,
                           const struct json_object *status, int64_t expected_rv,
                           struct json_object **out, struct vf_error *err);

/* Delete, or mark deletionTimestamp when finalizers remain.  expected_rv > 0
 * checks the resourceVersion.  *out (may be NULL): the last copy. */
int vf_store_delete(struct vf_store *st, const char *kind, const char *name, int64_t expected_rv,
                    struct json_object **out, struct vf_error *err);

/* Watches.  fn runs on the loop thread for each event in resourceVersion order;
 * `obj` is borrowed.  kind NULL: every kind.
 *   from_rv == 0: first an ADDED for every current object, then live changes.
 *   from_rv > 0: every event with resourceVersion > from_rv from the event log,
 *                then live changes; -ENODATA (410 Gone) if the log no longer
 *                reaches back that far.
 * Callbacks may call store functions (including watch_remove of themselves);
 * events caused by those writes are delivered after the current one. */
typedef void (*vf_store_watch_fn)(void *opaque, const char *kind, enum vf_watch_event type,
                                  const struct json_object *obj);
struct vf_store_watch;
int vf_store_watch_add(struct vf_store *st, const char *kind, int64_t from_rv,
                       vf_store_watch_fn fn, void *opaque, struct vf_store_watch **out,
                       struct vf_error *err);
void vf_store_watch_remove(struct vf_store *st, struct vf_store_watch *w);

/* Helpers shared with the API and CLI. */
int64_t vf_object_revision(const struct json_object *obj);  /* metadata.resourceVersion or 0 */
const char *vf_object_name(const struct json_object *obj);  /* metadata.name or NULL */
#endif
