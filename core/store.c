/* The durable resource store (see store.h for the contract).
 *
 * Layout: objects(kind, name) -> body, an append-only events log keyed by
 * resourceVersion, and meta(key, value) with the schema version and the newest
 * resourceVersion.  The revision lives in meta as well as in the rows so that it
 * never goes backwards, even when every event has been trimmed and every object
 * deleted.  Every write is one BEGIN IMMEDIATE transaction that touches the
 * object row, the event row and the revision together: after a crash either all
 * three are there or none is.
 *
 * Watch events are queued after COMMIT and delivered from a loop (never by
 * recursion), so a callback that writes sees its own event after the current
 * one, and a watcher removed mid-delivery is only marked and freed once no
 * delivery is running.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/json_util.h"
#include "core/store.h"

/* The newest layout this code knows.  A database written by a newer virtfleetd
 * is refused instead of being misread. */
#define STORE_SCHEMA_VERSION 1
#define STORE_DEFAULT_HISTORY 10000
/* Trim the event log in batches: one indexed range delete every TRIM_EVERY
 * writes keeps at most history + TRIM_EVERY rows at a negligible cost. */
#define STORE_TRIM_EVERY 128
#define STORE_BUSY_TIMEOUT_MS 5000
/* Keep the WAL file from growing without bound after a burst of writes. */
#define STORE_JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)
#define STORE_GENERATE_TRIES 16
#define STORE_NAME_SUFFIX_LEN 5

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_GET,
    ST_LIST_KIND,
    ST_LIST_ALL,
    ST_COUNT_KIND,
    ST_COUNT_ALL,
    ST_INSERT,
    ST_UPDATE,
    ST_DELETE,
    ST_EVENT_INSERT,
    ST_EVENTS_FROM,
    ST_EVENTS_FROM_KIND,
    ST_EVENTS_OLDEST,
    ST_EVENTS_TRIM,
    ST_SET_REVISION,
    ST_COUNT_
};

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT body FROM objects WHERE kind = ?1 AND name = ?2",
    [ST_LIST_KIND] = "SELECT kind, name, body FROM objects WHERE kind = ?1 ORDER BY name",
    [ST_LIST_ALL] = "SELECT kind, name, body FROM objects ORDER BY kind, name",
    [ST_COUNT_KIND] = "SELECT count(*) FROM objects WHERE kind = ?1",
    [ST_COUNT_ALL] = "SELECT count(*) FROM objects",
    [ST_INSERT] = "INSERT INTO objects(kind, name, uid, rv, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_UPDATE] = "UPDATE objects SET rv = ?3, body = ?4 WHERE kind = ?1 AND name = ?2",
    [ST_DELETE] = "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
    [ST_EVENT_INSERT] = "INSERT INTO events(rv, kind, name, type, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVENTS_FROM] = "SELECT rv, kind, type, body FROM events WHERE rv > ?1 ORDER BY rv",
    [ST_EVENTS_FROM_KIND] =
        "SELECT rv, kind, type, body FROM events WHERE rv > ?1 AND kind = ?2 ORDER BY rv",
    [ST_EVENTS_OLDEST] = "SELECT min(rv) FROM events",
    [ST_EVENTS_TRIM] = "DELETE FROM events WHERE rv <= ?1",
    [ST_SET_REVISION] = "INSERT OR REPLACE INTO meta(key, value) VALUES ('revision', ?1)",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS objects("
    "  kind TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  uid TEXT NOT NULL,"
    "  rv INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY (kind, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events("
    "  rv INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  body TEXT NOT NULL);";

struct vf_store_watch {
    struct vf_store_watch *next;
    char *kind;          /* NULL: every kind */
    vf_store_watch_fn fn;
    void *opaque;
    int64_t seen_rv;     /* newest event this watcher has been given (or replayed past) */
    bool removed;        /* freed by the sweep once no delivery is running */
};

struct store_event {
    struct store_event *next;
    int64_t rv;
    char *kind;
    enum vf_watch_event type;
    struct json_object *obj;
};

struct vf_store {
    sqlite3 *db;
    char *path;
    int event_history;
    int64_t revision;
    unsigned writes_since_trim;
    sqlite3_stmt *stmt[ST_COUNT_];
    struct vf_store_watch *watches;
    struct store_event *queue_head, *queue_tail;
    /* > 0 while events are being delivered or replayed: writes then only queue,
     * and removed watchers wait for the sweep. */
    int depth;
};

static const char *const event_type_names[] = {
    [VF_WATCH_ADDED] = "ADDED",
    [VF_WATCH_MODIFIED] = "MODIFIED",
    [VF_WATCH_DELETED] = "DELETED",
};

/* ---- small helpers ----------------------------------------------------- */

static int store_sql_error(struct vf_store *st, struct vf_error *err, const char *what,
                           const char *kind, const char *name)
{
    if (kind && name)
        return vf_error_set(err, -EIO, 500, "InternalError", "", "%s \"%s\": %s: %s", kind, name,
                            what, sqlite3_errmsg(st->db));
    return vf_error_set(err, -EIO, 500, "InternalError", "", "store %s: %s: %s", st->path, what,
                        sqlite3_errmsg(st->db));
}

static sqlite3_stmt *stmt_get(struct vf_store *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmt[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Runs a statement that returns no rows. */
static int stmt_exec(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

static const char *json_text(const struct json_object *obj)
{
    return json_object_to_json_string_ext((struct json_object *)obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static struct json_object *json_parse_column(sqlite3_stmt *s, int col)
{
    const char *text = (const char *)sqlite3_column_text(s, col);
    struct json_object *obj = text ? json_tokener_parse(text) : NULL;
    if (obj && !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* A resourceVersion as Kubernetes writes it (a decimal string), or as an
 * integer for lenient clients.  -ENOENT when absent, -EINVAL when malformed. */
static int rv_parse(const struct json_object *obj, int64_t *rv)
{
    struct json_object *meta = vf_json_member(obj, "metadata");
    struct json_object *v = vf_json_member(meta, "resourceVersion");
    if (!v)
        return -ENOENT;
    if (json_object_is_type(v, json_type_int)) {
        *rv = json_object_get_int64(v);
        return *rv >= 0 ? 0 : -EINVAL;
    }
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    const char *s = json_object_get_string(v);
    if (*s == '\0')
        return -ENOENT; /* "" is how clients say "no precondition" */
    int64_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10)
            return -EINVAL;
        n = n * 10 + (*p - '0');
    }
    *rv = n;
    return 0;
}

int64_t vf_object_revision(const struct json_object *obj)
{
    int64_t rv = 0;
    return rv_parse(obj, &rv) == 0 ? rv : 0;
}

const char *vf_object_name(const struct json_object *obj)
{
    return vf_json_string(vf_json_member(obj, "metadata"), "name");
}

static void timestamp_now(char *buf, size_t len)
{
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int random_fill(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int uuid_v4(char out[37])
{
    uint8_t b[16];
    int r = random_fill(b, sizeof b);
    if (r < 0)
        return r;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
    return 0;
}

/* Uniform [a-z0-9] characters: bytes >= 252 are redrawn so that no character is
 * more likely than another (252 = 7 * 36). */
static int random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t done = 0;
    while (done < n) {
        uint8_t b[16];
        int r = random_fill(b, sizeof b);
        if (r < 0)
            return r;
        for (size_t i = 0; i < sizeof b && done < n; i++)
            if (b[i] < 252)
                out[done++] = alphabet[b[i] % 36];
    }
    out[n] = '\0';
    return 0;
}

/* ---- composing stored objects ------------------------------------------ */

/* The metadata the store writes.  Identity fields come from the store, the
 * user-owned ones (labels, annotations, finalizers) from the request; unknown
 * metadata keys are dropped because the store owns metadata. */
struct meta_values {
    const char *name;
    const char *generate_name;
    const char *uid;
    int64_t rv;
    int64_t generation;
    const char *creation;
    const char *deletion;
    const struct json_object *labels;
    const struct json_object *annotations;
    const struct json_object *finalizers;
};

static bool finalizers_empty(const struct json_object *f)
{
    return !f || !json_object_is_type(f, json_type_array) || json_object_array_length(f) == 0;
}

static struct json_object *meta_build(const struct meta_values *m)
{
    struct json_object *meta = json_object_new_object();
    char rv[24];

    snprintf(rv, sizeof rv, "%" PRId64, m->rv);
    json_object_object_add(meta, "name", json_object_new_string(m->name));
    if (m->generate_name)
        json_object_object_add(meta, "generateName", json_object_new_string(m->generate_name));
    json_object_object_add(meta, "uid", json_object_new_string(m->uid));
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
    json_object_object_add(meta, "generation", json_object_new_int64(m->generation));
    json_object_object_add(meta, "creationTimestamp", json_object_new_string(m->creation));
    if (m->deletion)
        json_object_object_add(meta, "deletionTimestamp", json_object_new_string(m->deletion));
    if (m->labels)
        json_object_object_add(meta, "labels", vf_json_copy(m->labels));
    if (m->annotations)
        json_object_object_add(meta, "annotations", vf_json_copy(m->annotations));
    if (!finalizers_empty(m->finalizers))
        json_object_object_add(meta, "finalizers", vf_json_copy(m->finalizers));
    return meta;
}

/* A stored object in the canonical key order: apiVersion, kind, metadata, spec,
 * the request's other members, status.  meta is consumed; body's members
 * (except apiVersion, kind, metadata, status) and status are copied. */
static struct json_object *object_compose(const char *api_version, const char *kind,
                                          struct json_object *meta,
                                          const struct json_object *body,
                                          const struct json_object *status)
{
    struct json_object *obj = json_object_new_object();
    struct json_object *spec = vf_json_member(body, "spec");

    json_object_object_add(obj, "apiVersion",
                           json_object_new_string(api_version ? api_version
                                                              : VF_API_GROUP "/" VF_API_VERSION));
    json_object_object_add(obj, "kind", json_object_new_string(kind));
    json_object_object_add(obj, "metadata", meta);
    if (spec)
        json_object_object_add(obj, "spec", vf_json_copy(spec));
    if (body) {
        json_object_object_foreach((struct json_object *)body, key, val) {
            if (!strcmp(key, "apiVersion") || !strcmp(key, "kind") || !strcmp(key, "metadata") ||
                !strcmp(key, "spec") || !strcmp(key, "status") || !val)
                continue;
            json_object_object_add(obj, key, vf_json_copy(val));
        }
    }
    if (status)
        json_object_object_add(obj, "status", vf_json_copy(status));
    return obj;
}

/* Fills *m from a stored object's metadata (borrowed pointers into obj). */
static void meta_from_stored(const struct json_object *obj, struct meta_values *m)
{
    struct json_object *meta = vf_json_member(obj, "metadata");
    struct json_object *gen = vf_json_member(meta, "generation");

    memset(m, 0, sizeof *m);
    m->name = vf_json_string(meta, "name");
    m->generate_name = vf_json_string(meta, "generateName");
    m->uid = vf_json_string(meta, "uid");
    m->rv = vf_object_revision(obj);
    m->generation = gen ? json_object_get_int64(gen) : 1;
    m->creation = vf_json_string(meta, "creationTimestamp");
    m->deletion = vf_json_string(meta, "deletionTimestamp");
    m->labels = vf_json_member(meta, "labels");
    m->annotations = vf_json_member(meta, "annotations");
    m->finalizers = vf_json_member(meta, "finalizers");
    if (!m->uid)
        m->uid = "";
    if (!m->creation)
        m->creation = "";
}

/* ---- watch delivery ---------------------------------------------------- */

static void watch_free(struct vf_store_watch *w)
{
    free(w->kind);
    free(w);
}

/* Frees watchers removed while a delivery was running. */
static void watch_sweep(struct vf_store *st)
{
    struct vf_store_watch **pp = &st->watches;
    while (*pp) {
        struct vf_store_watch *w = *pp;
        if (w->removed) {
            *pp = w->next;
            watch_free(w);
        } else {
            pp = &w->next;
        }
    }
}

static bool watch_wants(const struct vf_store_watch *w, const char *kind)
{
    return !w->removed && (!w->kind || !strcmp(w->kind, kind));
}

static void event_free(struct store_event *ev)
{
    json_object_put(ev->obj);
    free(ev->kind);
    free(ev);
}

/* Delivers queued events in order.  Only the outermost call loops; a write made
 * by a callback appends to the queue and is picked up by this same loop, so
 * re-entrant writes never recurse. */
static void store_deliver(struct vf_store *st)
{
    struct store_event *ev;

    if (st->depth > 0)
        return;
    st->depth++;
    while ((ev = st->queue_head)) {
        st->queue_head = ev->next;
        if (!st->queue_head)
            st->queue_tail = NULL;
        /* Watchers added during this loop are appended; they skip events they
         * have already replayed thanks to seen_rv.  Removed ones stay linked
         * (only marked) until the sweep, so `next` stays valid. */
        for (struct vf_store_watch *w = st->watches; w; w = w->next) {
            if (!watch_wants(w, ev->kind) || ev->rv <= w->seen_rv)
                continue;
            w->seen_rv = ev->rv;
            w->fn(w->opaque, ev->kind, ev->type, ev->obj);
        }
        event_free(ev);
    }
    st->depth--;
    watch_sweep(st);
}

/* Takes a reference to obj. */
static void store_queue(struct vf_store *st, int64_t rv, const char *kind,
                        enum vf_watch_event type, struct json_object *obj)
{
    struct store_event *ev;

    if (!st->watches)
        return; /* nobody to tell; a later watcher replays from the log */
    ev = calloc(1, sizeof *ev);
    if (!ev || !(ev->kind = strdup(kind))) {
        /* Out of memory after a committed write: the event stays in the log,
         * and a watcher that reconnects from its last resourceVersion gets it. */
        vf_log_error("store: %s \"%s\": out of memory queueing the watch event", kind,
                     vf_object_name(obj) ? vf_object_name(obj) : "");
        free(ev);
        return;
    }
    ev->rv = rv;
    ev->type = type;
    ev->obj = json_object_get(obj);
    if (st->queue_tail)
        st->queue_tail->next = ev;
    else
        st->queue_head = ev;
    st->queue_tail = ev;
}

/* ---- open / close ------------------------------------------------------ */

static int exec_sql(struct vf_store *st, const char *sql, struct vf_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = vf_error_set(err, -EIO, 500, "InternalError", "", "store %s: %s: %s", st->path,
                             sql, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

/* Reads one integer or text value from a single-row query; -ENOENT when it
 * returns no row or NULL. */
static int query_int64(struct vf_store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc, r = -ENOENT;

    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(s, 0);
        r = 0;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r = -EIO;
    }
    sqlite3_finalize(s);
    return r;
}

static int store_pragmas(struct vf_store *st, const struct vf_store_options *opts,
                         struct vf_error *err)
{
    char sql[128];
    sqlite3_stmt *s = NULL;
    bool wal = false;
    int r;

    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    /* Hardening: no writable_schema tricks, no SQL functions from the schema. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
        return store_sql_error(st, err, "enabling WAL", NULL, NULL);
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        wal = mode && !strcasecmp(mode, "wal");
    }
    sqlite3_finalize(s);
    if (!wal)
        return vf_error_set(err, -EIO, 500, "InternalError", "",
                            "store %s: cannot enable WAL journal mode (%s); the state directory "
                            "must be on a local filesystem",
                            st->path, sqlite3_errmsg(st->db));

    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s; PRAGMA journal_size_limit=%d;",
             opts && opts->synchronous_full ? "FULL" : "NORMAL", STORE_JOURNAL_SIZE_LIMIT);
    r = exec_sql(st, sql, err);
    return r;
}

/* Creates the tables on first use and refuses a layout newer than ours. */
static int store_schema(struct vf_store *st, struct vf_error *err)
{
    int64_t version = 0, have_meta = 0;
    char sql[128];
    int r;

    if ((r = exec_sql(st, "BEGIN IMMEDIATE", err)) < 0)
        return r;
    r = query_int64(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    &have_meta);
    if (r < 0) {
        r = store_sql_error(st, err, "reading the schema", NULL, NULL);
        goto fail;
    }
    if (have_meta) {
        r = query_int64(st, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema'",
                        &version);
        if (r == -EIO) {
            r = store_sql_error(st, err, "reading the schema version", NULL, NULL);
            goto fail;
        }
    }
    if (version > STORE_SCHEMA_VERSION) {
        r = vf_error_set(err, -EPROTONOSUPPORT, 500, "InternalError", "",
                         "store %s: schema version %" PRId64 " is newer than this virtfleetd "
                         "knows (%d); run a newer virtfleetd or restore a backup",
                         st->path, version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if ((r = exec_sql(st, schema_sql, err)) < 0)
        goto fail;
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', '%d')",
             STORE_SCHEMA_VERSION);
    if (version < STORE_SCHEMA_VERSION && (r = exec_sql(st, sql, err)) < 0)
        goto fail;
    return exec_sql(st, "COMMIT", err);
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

/* The newest resourceVersion anywhere: meta normally has it; the rows are a
 * belt-and-braces floor so rv can never be handed out twice. */
static int store_load_revision(struct vf_store *st, struct vf_error *err)
{
    static const char *const queries[] = {
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'revision'",
        "SELECT max(rv) FROM events",
        "SELECT max(rv) FROM objects",
    };
    st->revision = 0;
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        int64_t v = 0;
        int r = query_int64(st, queries[i], &v);
        if (r == -EIO)
            return store_sql_error(st, err, "reading the revision", NULL, NULL);
        if (r == 0 && v > st->revision)
            st->revision = v;
    }
    return 0;
}

int vf_store_open(const char *path, const struct vf_store_options *opts, struct vf_store **out,
                  struct vf_error *err)
{
    struct vf_store *st;
    int fd, r, rc;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "store %s: out of memory",
                            path);
    }
    st->event_history =
        opts && opts->event_history > 0 ? opts->event_history : STORE_DEFAULT_HISTORY;

    /* SQLite creates files with 0644 & ~umask; the store holds every object, so
     * create it 0600 first.  SQLite gives -wal and -shm the database's mode. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        r = -errno;
        vf_error_set(err, r, 500, "InternalError", "", "store %s: cannot open: %s", path,
                     strerror(-r));
        goto fail;
    }
    close(fd);

    rc = sqlite3_open_v2(path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        r = vf_error_set(err, -EIO, 500, "InternalError", "", "store %s: cannot open: %s", path,
                         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if ((r = store_pragmas(st, opts, err)) < 0)
        goto fail;
    if ((r = store_schema(st, err)) < 0)
        goto fail;
    if ((r = store_load_revision(st, err)) < 0)
        goto fail;
    for (int i = 0; i < ST_COUNT_; i++) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                               NULL) != SQLITE_OK) {
            r = store_sql_error(st, err, "preparing statements", NULL, NULL);
            goto fail;
        }
    }
    *out = st;
    return 0;
fail:
    vf_store_close(st);
    return r;
}

void vf_store_close(struct vf_store *st)
{
    struct store_event *ev;

    if (!st)
        return;
    while ((ev = st->queue_head)) {
        st->queue_head = ev->next;
        event_free(ev);
    }
    while (st->watches) {
        struct vf_store_watch *w = st->watches;
        st->watches = w->next;
        watch_free(w);
    }
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->db)
        sqlite3_close_v2(st->db);
    free(st->path);
    free(st);
}

int64_t vf_store_revision(const struct vf_store *st)
{
    return st->revision;
}

/* ---- reads ------------------------------------------------------------- */

/* -ENOENT when absent, -EIO when SQLite fails, -EBADMSG when the row does not
 * hold a JSON object (both logged here, since reads carry no vf_error). */
static int store_read(struct vf_store *st, const char *kind, const char *name,
                      struct json_object **out)
{
    sqlite3_stmt *s = stmt_get(st, ST_GET);
    int rc;

    *out = NULL;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return -ENOENT;
    }
    if (rc != SQLITE_ROW) {
        vf_log_error("store: %s \"%s\": read failed: %s", kind, name, sqlite3_errmsg(st->db));
        sqlite3_reset(s);
        return -EIO;
    }
    *out = json_parse_column(s, 0);
    sqlite3_reset(s);
    if (!*out) {
        vf_log_error("store: %s \"%s\": stored body is not a JSON object", kind, name);
        return -EBADMSG;
    }
    return 0;
}

int vf_store_get(struct vf_store *st, const char *kind, const char *name, struct json_object **out)
{
    if (!kind || !name) {
        *out = NULL;
        return -ENOENT;
    }
    return store_read(st, kind, name, out);
}

/* Calls fn for each (kind, object) row of a list query, in order.  The rows are
 * parsed first so that fn may call back into the store (the cached statement
 * is then free again). */
static int store_rows(struct vf_store *st, const char *kind, struct json_object **items,
                      struct json_object **kinds)
{
    sqlite3_stmt *s = stmt_get(st, kind ? ST_LIST_KIND : ST_LIST_ALL);
    int rc;

    *items = json_object_new_array();
    if (kinds)
        *kinds = json_object_new_array();
    if (kind)
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct json_object *obj = json_parse_column(s, 2);
        if (!obj) {
            /* One damaged row must not hide the others from a list. */
            vf_log_error("store: %s \"%s\": stored body is not a JSON object",
                         (const char *)sqlite3_column_text(s, 0),
                         (const char *)sqlite3_column_text(s, 1));
            continue;
        }
        json_object_array_add(*items, obj);
        if (kinds)
            json_object_array_add(
                *kinds, json_object_new_string((const char *)sqlite3_column_text(s, 0)));
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        vf_log_error("store: listing %s failed: %s", kind ? kind : "objects",
                     sqlite3_errmsg(st->db));
        json_object_put(*items);
        *items = NULL;
        if (kinds) {
            json_object_put(*kinds);
            *kinds = NULL;
        }
        return -EIO;
    }
    return 0;
}

int vf_store_list(struct vf_store *st, const char *kind, struct json_object **items,
                  int64_t *revision)
{
    int r = store_rows(st, kind, items, NULL);
    if (r == 0 && revision)
        *revision = st->revision;
    return r;
}

int vf_store_list_text(struct vf_store *st, const char *kind, char **text, size_t *len,
                       int64_t *revision)
{
    sqlite3_stmt *s = stmt_get(st, ST_LIST_KIND);
    FILE *out = open_memstream(text, len);
    int rc;

    if (!out)
        return -ENOMEM;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    for (bool first = true; (rc = sqlite3_step(s)) == SQLITE_ROW; first = false) {
        if (!first)
            fputc(',', out);
        fwrite(sqlite3_column_blob(s, 2), 1, (size_t)sqlite3_column_bytes(s, 2), out);
    }
    sqlite3_reset(s);
    if (fclose(out) != 0 || rc != SQLITE_DONE) {
        vf_log_error("store: listing %s failed: %s", kind, sqlite3_errmsg(st->db));
        free(*text);
        *text = NULL;
        return -EIO;
    }
    if (revision)
        *revision = st->revision;
    return 0;
}

int64_t vf_store_count(struct vf_store *st, const char *kind)
{
    sqlite3_stmt *s = stmt_get(st, kind ? ST_COUNT_KIND : ST_COUNT_ALL);
    int64_t n = -EIO;

    if (kind)
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    else
        vf_log_error("store: counting %s failed: %s", kind ? kind : "objects",
                     sqlite3_errmsg(st->db));
    sqlite3_reset(s);
    return n;
}

/* ---- writes ------------------------------------------------------------ */

enum write_op { WRITE_INSERT, WRITE_UPDATE, WRITE_DELETE };

static int tx_begin(struct vf_store *st, const char *kind, const char *name, struct vf_error *err)
{
    if (stmt_exec(stmt_get(st, ST_BEGIN)) < 0)
        return store_sql_error(st, err, "cannot begin a transaction", kind, name);
    return 0;
}

static void tx_rollback(struct vf_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        stmt_exec(stmt_get(st, ST_ROLLBACK));
}

/* Writes the object row, the event and the revision inside the open
 * transaction, trims the log when due, commits, then queues the watch event
 * and delivers.  obj already carries resourceVersion rv = revision + 1.  On
 * failure the transaction is rolled back and nothing changes. */
static int tx_write(struct vf_store *st, enum write_op op, const char *kind, const char *name,
                    const char *uid, enum vf_watch_event type, struct json_object *obj,
                    struct vf_error *err)
{
    int64_t rv = st->revision + 1;
    const char *body = json_text(obj);
    sqlite3_stmt *s;
    int r;
    bool trim = st->writes_since_trim + 1 >= STORE_TRIM_EVERY;

    switch (op) {
    case WRITE_INSERT:
        s = stmt_get(st, ST_INSERT);
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, uid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, rv);
        sqlite3_bind_text(s, 5, body, -1, SQLITE_STATIC);
        break;
    case WRITE_UPDATE:
        s = stmt_get(st, ST_UPDATE);
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, rv);
        sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
        break;
    default:
        s = stmt_get(st, ST_DELETE);
        sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        break;
    }
    if (stmt_exec(s) < 0)
        goto fail;

    s = stmt_get(st, ST_EVENT_INSERT);
    sqlite3_bind_int64(s, 1, rv);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, event_type_names[type], -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, body, -1, SQLITE_STATIC);
    if (stmt_exec(s) < 0)
        goto fail;

    s = stmt_get(st, ST_SET_REVISION);
    sqlite3_bind_int64(s, 1, rv);
    if (stmt_exec(s) < 0)
        goto fail;

    if (trim && rv > st->event_history) {
        s = stmt_get(st, ST_EVENTS_TRIM);
        sqlite3_bind_int64(s, 1, rv - st->event_history);
        if (stmt_exec(s) < 0)
            goto fail;
    }
    if (stmt_exec(stmt_get(st, ST_COMMIT)) < 0)
        goto fail;

    st->revision = rv;
    st->writes_since_trim = trim ? 0 : st->writes_since_trim + 1;
    store_queue(st, rv, kind, type, obj);
    return 0;
fail:
    r = store_sql_error(st, err, "write failed", kind, name);
    tx_rollback(st);
    return r;
}

/* Hands the caller its own copy: the queued event holds the stored one, and a
 * caller that edits *out must not change what watchers see. */
static void result_out(struct json_object *obj, struct json_object **out)
{
    if (out)
        *out = vf_json_copy(obj);
}

/* A failed store_read inside a write, as the caller's error. */
static int read_error(struct vf_store *st, struct vf_error *err, int r, const char *kind,
                      const char *name)
{
    if (r == -EBADMSG)
        return vf_error_set(err, -EIO, 500, "InternalError", "",
                            "%s \"%s\": the stored body is not a JSON object; the database is "
                            "damaged",
                            kind, name);
    return store_sql_error(st, err, "read failed", kind, name);
}

static int err_not_found(struct vf_error *err, const char *kind, const char *name)
{
    return vf_error_set(err, -ENOENT, 404, "NotFound", "", "%s \"%s\" not found", kind, name);
}

/* Reads the stored object inside the write transaction and checks the
 * caller's resourceVersion precondition (0: none). */
static int tx_read_checked(struct vf_store *st, const char *kind, const char *name,
                           int64_t expected_rv, struct json_object **old, struct vf_error *err)
{
    int r = store_read(st, kind, name, old);
    if (r == -ENOENT)
        return err_not_found(err, kind, name);
    if (r < 0)
        return read_error(st, err, r, kind, name);
    int64_t current = vf_object_revision(*old);
    if (expected_rv > 0 && expected_rv != current) {
        json_object_put(*old);
        *old = NULL;
        return vf_error_set(err, -ESTALE, 409, "Conflict", "metadata.resourceVersion",
                            "%s \"%s\": resourceVersion \"%" PRId64 "\" is stale (current is \"%" PRId64
                            "\"); get the object again and retry",
                            kind, name, expected_rv, current);
    }
    return 0;
}

/* The caller's resourceVersion precondition from obj (0: none). */
static int expected_rv_of(const struct json_object *obj, const char *kind, const char *name,
                          int64_t *rv, struct vf_error *err)
{
    int r = rv_parse(obj, rv);
    if (r == -ENOENT) {
        *rv = 0;
        return 0;
    }
    if (r < 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.resourceVersion",
                            "metadata.resourceVersion: %s \"%s\": not a resourceVersion; use the "
                            "decimal string from the stored object",
                            kind, name);
    return 0;
}

int vf_store_create(struct vf_store *st, const char *kind, const struct json_object *obj,
                    struct json_object **out, struct vf_error *err)
{
    struct json_object *meta = vf_json_member(obj, "metadata");
    const char *name = vf_json_string(meta, "name");
    const char *prefix = vf_json_string(meta, "generateName");
    char generated[256], uid[37], now[32];
    struct json_object *stored = NULL, *existing = NULL;
    int r;

    if (out)
        *out = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "%s: the object must be a JSON object",
                            kind);
    if ((!name || !*name) && (!prefix || !*prefix))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "metadata.name: %s: set metadata.name or metadata.generateName", kind);
    if ((r = uuid_v4(uid)) < 0)
        return vf_error_set(err, r, 500, "InternalError", "", "%s: no random bytes for a uid: %s",
                            kind, strerror(-r));
    timestamp_now(now, sizeof now);

    if ((r = tx_begin(st, kind, name ? name : prefix, err)) < 0)
        return r;
    if (name && *name) {
        r = store_read(st, kind, name, &existing);
        if (r == 0) {
            json_object_put(existing);
            tx_rollback(st);
            return vf_error_set(err, -EEXIST, 409, "AlreadyExists", "metadata.name",
                                "%s \"%s\" already exists", kind, name);
        }
    } else {
        /* 36^5 names per prefix: a collision is rare, a run of them means the
         * prefix is nearly exhausted. */
        r = -EEXIST;
        for (int i = 0; i < STORE_GENERATE_TRIES && r == -EEXIST; i++) {
            char suffix[STORE_NAME_SUFFIX_LEN + 1];
            if ((r = random_suffix(suffix, STORE_NAME_SUFFIX_LEN)) < 0)
                break;
            snprintf(generated, sizeof generated, "%s%s", prefix, suffix);
            r = store_read(st, kind, generated, &existing);
            if (r == 0) {
                json_object_put(existing);
                r = -EEXIST;
            }
        }
        if (r == -EEXIST) {
            tx_rollback(st);
            return vf_error_set(err, -EEXIST, 409, "AlreadyExists", "metadata.generateName",
                                "%s: no free name with generateName \"%s\" after %d tries; use "
                                "another prefix",
                                kind, prefix, STORE_GENERATE_TRIES);
        }
        name = generated;
    }
    if (r != -ENOENT) {
        tx_rollback(st);
        if (r == -EIO || r == -EBADMSG)
            return read_error(st, err, r, kind, name);
        return vf_error_set(err, r, 500, "InternalError", "", "%s \"%s\": no random bytes: %s",
                            kind, name, strerror(-r));
    }

    struct meta_values m = {
        .name = name,
        .generate_name = prefix && *prefix ? prefix : NULL,
        .uid = uid,
        .rv = st->revision + 1,
        .generation = 1,
        .creation = now,
        .labels = vf_json_member(meta, "labels"),
        .annotations = vf_json_member(meta, "annotations"),
        .finalizers = vf_json_member(meta, "finalizers"),
    };
    stored = object_compose(vf_json_string(obj, "apiVersion"), kind, meta_build(&m), obj,
                            vf_json_member(obj, "status"));
    r = tx_write(st, WRITE_INSERT, kind, name, uid, VF_WATCH_ADDED, stored, err);
    if (r == 0)
        result_out(stored, out);
    json_object_put(stored);
    if (r == 0)
        store_deliver(st);
    return r;
}

int vf_store_update(struct vf_store *st, const char *kind, const struct json_object *obj,
                    struct json_object **out, struct vf_error *err)
{
    const char *name = vf_object_name(obj);
    struct json_object *meta = vf_json_member(obj, "metadata");
    struct json_object *old = NULL, *stored = NULL;
    struct meta_values m;
    int64_t expected;
    enum write_op op = WRITE_UPDATE;
    enum vf_watch_event type = VF_WATCH_MODIFIED;
    int r;

    if (out)
        *out = NULL;
    if (!name || !*name)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "metadata.name: %s: the object to update needs a name", kind);
    if ((r = expected_rv_of(obj, kind, name, &expected, err)) < 0)
        return r;
    if ((r = tx_begin(st, kind, name, err)) < 0)
        return r;
    if ((r = tx_read_checked(st, kind, name, expected, &old, err)) < 0) {
        tx_rollback(st);
        return r;
    }

    meta_from_stored(old, &m);
    m.labels = vf_json_member(meta, "labels");
    m.annotations = vf_json_member(meta, "annotations");
    m.finalizers = vf_json_member(meta, "finalizers");
    if (!json_object_equal(vf_json_member(old, "spec"), vf_json_member(obj, "spec")))
        m.generation++;
    const char *api_version = vf_json_string(obj, "apiVersion");
    stored = object_compose(api_version ? api_version : vf_json_string(old, "apiVersion"),
                            kind, meta_build(&m), obj, vf_json_member(old, "status"));

    /* A write that changes nothing is not a write: no new resourceVersion and
     * no event, so controllers that re-apply their desired state do not wake
     * each other up forever. */
    if (json_object_equal(stored, old)) {
        tx_rollback(st);
        result_out(old, out);
        json_object_put(old);
        json_object_put(stored);
        return 0;
    }
    m.rv = st->revision + 1;
    json_object_object_add(stored, "metadata", meta_build(&m));
    if (m.deletion && finalizers_empty(m.finalizers)) {
        /* The last finalizer is gone from an object marked for deletion. */
        op = WRITE_DELETE;
        type = VF_WATCH_DELETED;
    }
    r = tx_write(st, op, kind, name, m.uid, type, stored, err);
    if (r == 0)
        result_out(stored, out);
    json_object_put(stored);
    json_object_put(old);
    if (r == 0)
        store_deliver(st);
    return r;
}

int vf_store_update_status(struct vf_store *st, const char *kind, const char *name,
                           const struct json_object *status, int64_t expected_rv,
                           struct json_object **out, struct vf_error *err)
{
    struct json_object *old = NULL, *stored = NULL;
    struct meta_values m;
    int r;

    if (out)
        *out = NULL;
    if (!name || !*name)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "metadata.name: %s: the object needs a name", kind);
    if (status && !json_object_is_type(status, json_type_object))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "status",
                            "status: %s \"%s\": status must be a JSON object", kind, name);
    if ((r = tx_begin(st, kind, name, err)) < 0)
        return r;
    if ((r = tx_read_checked(st, kind, name, expected_rv, &old, err)) < 0) {
        tx_rollback(st);
        return r;
    }
    if (json_object_equal(vf_json_member(old, "status"), (struct json_object *)status)) {
        tx_rollback(st);
        result_out(old, out);
        json_object_put(old);
        return 0;
    }
    meta_from_stored(old, &m);
    m.rv = st->revision + 1;
    stored = object_compose(vf_json_string(old, "apiVersion"), kind, meta_build(&m), old,
                            status);
    r = tx_write(st, WRITE_UPDATE, kind, name, m.uid, VF_WATCH_MODIFIED, stored, err);
    if (r == 0)
        result_out(stored, out);
    json_object_put(stored);
    json_object_put(old);
    if (r == 0)
        store_deliver(st);
    return r;
}

int vf_store_delete(struct vf_store *st, const char *kind, const char *name, int64_t expected_rv,
                    struct json_object **out, struct vf_error *err)
{
    struct json_object *old = NULL, *stored = NULL;
    struct meta_values m;
    char now[32];
    enum write_op op = WRITE_DELETE;
    enum vf_watch_event type = VF_WATCH_DELETED;
    int r;

    if (out)
        *out = NULL;
    if (!name || !*name)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "metadata.name: %s: the object to delete needs a name", kind);
    if ((r = tx_begin(st, kind, name, err)) < 0)
        return r;
    if ((r = tx_read_checked(st, kind, name, expected_rv, &old, err)) < 0) {
        tx_rollback(st);
        return r;
    }
    meta_from_stored(old, &m);
    if (!finalizers_empty(m.finalizers)) {
        if (m.deletion) {
            /* Already marked: deleting again changes nothing. */
            tx_rollback(st);
            result_out(old, out);
            json_object_put(old);
            return 0;
        }
        timestamp_now(now, sizeof now);
        m.deletion = now;
        op = WRITE_UPDATE;
        type = VF_WATCH_MODIFIED;
    }
    m.rv = st->revision + 1;
    stored = object_compose(vf_json_string(old, "apiVersion"), kind, meta_build(&m), old,
                            vf_json_member(old, "status"));
    r = tx_write(st, op, kind, name, m.uid, type, stored, err);
    if (r == 0)
        result_out(stored, out);
    json_object_put(stored);
    json_object_put(old);
    if (r == 0)
        store_deliver(st);
    return r;
}

/* ---- watches ----------------------------------------------------------- */

static int event_type_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof event_type_names / sizeof event_type_names[0]); i++)
        if (s && !strcmp(s, event_type_names[i]))
            return i;
    return -1;
}

/* Loads the logged events after from_rv (parsed first, so callbacks may use
 * the store while they are delivered).  -ENODATA when the log no longer reaches
 * back to from_rv. */
static int watch_load_log(struct vf_store *st, const char *kind, int64_t from_rv,
                          struct json_object **events, struct vf_error *err)
{
    sqlite3_stmt *s = stmt_get(st, ST_EVENTS_OLDEST);
    int64_t oldest = 0;
    bool have_oldest = false;
    int rc;

    *events = NULL;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        oldest = sqlite3_column_int64(s, 0);
        have_oldest = true;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return store_sql_error(st, err, "reading the event log", NULL, NULL);
    if (from_rv > st->revision)
        return vf_error_set(err, -ENODATA, 410, "Expired", "",
                            "resourceVersion \"%" PRId64 "\" is newer than the store's (\"%" PRId64
                            "\"); list again and watch from the list's resourceVersion",
                            from_rv, st->revision);
    /* Events from_rv+1 .. revision must all be in the log. */
    if (from_rv < st->revision && (!have_oldest || from_rv < oldest - 1))
        return vf_error_set(err, -ENODATA, 410, "Expired", "",
                            "resourceVersion \"%" PRId64 "\" is too old: the event history starts "
                            "at \"%" PRId64 "\"; list again and watch from the list's "
                            "resourceVersion",
                            from_rv, have_oldest ? oldest : st->revision + 1);

    s = stmt_get(st, kind ? ST_EVENTS_FROM_KIND : ST_EVENTS_FROM);
    sqlite3_bind_int64(s, 1, from_rv);
    if (kind)
        sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    *events = json_object_new_array();
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct json_object *obj = json_parse_column(s, 3);
        int type = event_type_parse((const char *)sqlite3_column_text(s, 2));
        if (!obj || type < 0) {
            json_object_put(obj);
            continue;
        }
        /* Kept as [kind, type, object] triples. */
        struct json_object *ev = json_object_new_array();
        json_object_array_add(ev, json_object_new_string((const char *)sqlite3_column_text(s, 1)));
        json_object_array_add(ev, json_object_new_int(type));
        json_object_array_add(ev, obj);
        json_object_array_add(*events, ev);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        json_object_put(*events);
        *events = NULL;
        return store_sql_error(st, err, "reading the event log", NULL, NULL);
    }
    return 0;
}

int vf_store_watch_add(struct vf_store *st, const char *kind, int64_t from_rv,
                       vf_store_watch_fn fn, void *opaque, struct vf_store_watch **out,
                       struct vf_error *err)
{
    struct json_object *items = NULL, *kinds = NULL, *events = NULL;
    struct vf_store_watch *w;
    int r;

    *out = NULL;
    if (from_rv < 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "resourceVersion",
                            "resourceVersion: %" PRId64 " is negative", from_rv);
    if (from_rv == 0)
        r = store_rows(st, kind, &items, &kinds) < 0
                ? store_sql_error(st, err, "listing objects to watch", NULL, NULL)
                : 0;
    else
        r = watch_load_log(st, kind, from_rv, &events, err);
    if (r < 0)
        return r;

    w = calloc(1, sizeof *w);
    if (!w || (kind && !(w->kind = strdup(kind)))) {
        free(w);
        json_object_put(items);
        json_object_put(kinds);
        json_object_put(events);
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "watch: out of memory");
    }
    w->fn = fn;
    w->opaque = opaque;
    /* Everything up to the current revision is covered by the replay below;
     * queued events at or below it (writes made by a callback that is adding
     * this watch) must not reach it twice. */
    w->seen_rv = st->revision;
    {
        struct vf_store_watch **pp = &st->watches;
        while (*pp)
            pp = &(*pp)->next;
        *pp = w;
    }
    *out = w;

    /* Replay with writes only queueing: events made by replay callbacks come
     * after the replay, in order. */
    st->depth++;
    if (items) {
        size_t n = json_object_array_length(items);
        for (size_t i = 0; i < n && !w->removed; i++)
            fn(opaque, json_object_get_string(json_object_array_get_idx(kinds, i)),
               VF_WATCH_ADDED, json_object_array_get_idx(items, i));
    } else {
        size_t n = json_object_array_length(events);
        for (size_t i = 0; i < n && !w->removed; i++) {
            struct json_object *ev = json_object_array_get_idx(events, i);
            fn(opaque, json_object_get_string(json_object_array_get_idx(ev, 0)),
               (enum vf_watch_event)json_object_get_int(json_object_array_get_idx(ev, 1)),
               json_object_array_get_idx(ev, 2));
        }
    }
    st->depth--;
    json_object_put(items);
    json_object_put(kinds);
    json_object_put(events);
    if (st->depth == 0) {
        store_deliver(st);
        watch_sweep(st);
    }
    return 0;
}

void vf_store_watch_remove(struct vf_store *st, struct vf_store_watch *w)
{
    if (!w)
        return;
    w->removed = true;
    if (st->depth == 0)
        watch_sweep(st);
}
