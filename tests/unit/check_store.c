/* The store: CRUD and metadata, resourceVersion rules, finalizers, watches
 * (replay, expiry, re-entrancy) and durability across SIGKILL. */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/store.h"
#include "tests/unit/testlib.h"

#define VM "VirtualMachine"

static char *dir;
static char *path;
static struct vf_store *st;

static void open_store(int history)
{
    struct vf_store_options opts = {.event_history = history};
    struct vf_error err = {0};
    int r = vf_store_open(path, &opts, &st, &err);
    ck_assert_msg(r == 0, "open: %s", err.message);
}

static void setup(void)
{
    dir = vf_test_tmpdir();
    ck_assert_int_gt(asprintf(&path, "%s/store.db", dir), 0);
    open_store(0);
}

static void teardown(void)
{
    vf_store_close(st);
    st = NULL;
    vf_test_rmtree(dir);
    free(dir);
    free(path);
}

/* Creates kind/name with an optional spec (JSON text); returns the stored copy. */
static struct json_object *create(const char *kind, const char *name, const char *spec)
{
    char text[512];
    struct json_object *obj, *out = NULL;
    struct vf_error err = {0};
    snprintf(text, sizeof text, "{\"metadata\":{\"name\":\"%s\"},\"spec\":%s}", name,
             spec ? spec : "{}");
    obj = vf_test_json(text);
    int r = vf_store_create(st, kind, obj, &out, &err);
    ck_assert_msg(r == 0, "create %s: %s", name, err.message);
    json_object_put(obj);
    return out;
}

static void create_put(const char *kind, const char *name)
{
    json_object_put(create(kind, name, NULL));
}

/* ---- recording watcher ------------------------------------------------- */

#define REC_MAX 512
struct rec {
    int n;
    enum vf_watch_event type[REC_MAX];
    char name[REC_MAX][64];
    char kind[REC_MAX][32];
    int64_t rv[REC_MAX];
};

static void rec_fn(void *opaque, const char *kind, enum vf_watch_event type,
                   const struct json_object *obj)
{
    struct rec *r = opaque;
    ck_assert_int_lt(r->n, REC_MAX);
    r->type[r->n] = type;
    snprintf(r->name[r->n], sizeof r->name[0], "%s", vf_object_name(obj));
    snprintf(r->kind[r->n], sizeof r->kind[0], "%s", kind);
    r->rv[r->n] = vf_object_revision(obj);
    r->n++;
}

static struct vf_store_watch *watch(const char *kind, int64_t from, vf_store_watch_fn fn,
                                    void *opaque)
{
    struct vf_store_watch *w = NULL;
    struct vf_error err = {0};
    int r = vf_store_watch_add(st, kind, from, fn, opaque, &w, &err);
    ck_assert_msg(r == 0, "watch_add: %s", err.message);
    ck_assert_ptr_nonnull(w);
    return w;
}

/* ---- open -------------------------------------------------------------- */

START_TEST(test_open_mode_and_schema)
{
    struct stat sb;
    struct vf_error err = {0};
    struct vf_store *other = NULL;
    sqlite3 *db;

    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(vf_store_revision(st), 0);
    ck_assert_int_eq(vf_store_count(st, NULL), 0);
    vf_store_close(st);
    st = NULL;

    /* A database from a newer virtfleetd is refused, not misread. */
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_changes(db), 1);
    sqlite3_close(db);
    ck_assert_int_eq(vf_store_open(path, NULL, &other, &err), -EPROTONOSUPPORT);
    ck_assert_ptr_null(other);
    ck_assert_int_eq(err.status, 500);
    ck_assert_msg(strstr(err.message, "schema version 99 is newer"), "%s", err.message);

    /* Not a database at all. */
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an SQLite database, just some text that is long enough to matter\n", f);
    fclose(f);
    unlink(path); /* the -wal/-shm of the old file must not be applied to this one */
    f = fopen(path, "w");
    fprintf(f, "%0512d", 7);
    fclose(f);
    ck_assert_int_lt(vf_store_open(path, NULL, &other, &err), 0);
    ck_assert_ptr_null(other);
    ck_assert_int_eq(err.status, 500);
    ck_assert_msg(strstr(err.message, path), "%s", err.message);
}
END_TEST

/* ---- create / get / list / update / delete ---------------------------- */

START_TEST(test_crud)
{
    struct vf_error err = {0};
    struct json_object *a = create(VM, "a", "{\"cpu\":{\"cores\":1}}"), *got = NULL, *items = NULL;
    int64_t rev = 0;

    ck_assert_str_eq(vf_test_json_str(a, "apiVersion"), "virtfleet.io/v1alpha2");
    ck_assert_str_eq(vf_test_json_str(a, "kind"), VM);
    ck_assert_str_eq(vf_test_json_str(a, "metadata.resourceVersion"), "1");
    ck_assert_int_eq(vf_test_json_int(a, "metadata.generation"), 1);
    const char *uid = vf_test_json_str(a, "metadata.uid");
    ck_assert_ptr_nonnull(uid);
    ck_assert_uint_eq(strlen(uid), 36);
    ck_assert_int_eq(uid[14], '4');
    ck_assert_msg(strchr("89ab", uid[19]), "uid variant: %s", uid);
    const char *ts = vf_test_json_str(a, "metadata.creationTimestamp");
    ck_assert_ptr_nonnull(ts);
    ck_assert_uint_eq(strlen(ts), 20);
    ck_assert_int_eq(ts[10], 'T');
    ck_assert_int_eq(ts[19], 'Z');
    ck_assert_int_eq(vf_object_revision(a), 1);
    ck_assert_str_eq(vf_object_name(a), "a");

    ck_assert_int_eq(vf_store_get(st, VM, "a", &got), 0);
    ck_assert(json_object_equal(a, got));
    json_object_put(got);
    ck_assert_int_eq(vf_store_get(st, VM, "missing", &got), -ENOENT);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(vf_store_get(st, "Node", "a", &got), -ENOENT);

    create_put(VM, "c");
    create_put(VM, "b");
    create_put("Node", "n1");
    ck_assert_int_eq(vf_store_list(st, VM, &items, &rev), 0);
    ck_assert_uint_eq(json_object_array_length(items), 3);
    ck_assert_str_eq(vf_test_json_str(items, "0.metadata.name"), "a");
    ck_assert_str_eq(vf_test_json_str(items, "1.metadata.name"), "b");
    ck_assert_str_eq(vf_test_json_str(items, "2.metadata.name"), "c");
    ck_assert_int_eq(rev, 4);
    ck_assert_int_eq(rev, vf_store_revision(st));
    json_object_put(items);
    ck_assert_int_eq(vf_store_count(st, VM), 3);
    ck_assert_int_eq(vf_store_count(st, "Node"), 1);
    ck_assert_int_eq(vf_store_count(st, NULL), 4);

    /* Duplicate. */
    struct json_object *dup = vf_test_json("{\"metadata\":{\"name\":\"a\"}}");
    ck_assert_int_eq(vf_store_create(st, VM, dup, NULL, &err), -EEXIST);
    ck_assert_int_eq(err.status, 409);
    ck_assert_str_eq(err.reason, "AlreadyExists");
    ck_assert_str_eq(err.message, "VirtualMachine \"a\" already exists");
    json_object_put(dup);

    /* No name at all. */
    struct json_object *noname = vf_test_json("{\"spec\":{}}");
    ck_assert_int_eq(vf_store_create(st, VM, noname, NULL, &err), -EINVAL);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.field, "metadata.name");
    json_object_put(noname);

    /* Update spec: new rv, generation + 1, labels replaced, status kept. */
    struct json_object *st_obj = vf_test_json("{\"phase\":\"Running\"}"), *out = NULL;
    ck_assert_int_eq(vf_store_update_status(st, VM, "a", st_obj, 0, &out, &err), 0);
    ck_assert_str_eq(vf_test_json_str(out, "status.phase"), "Running");
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 1);
    ck_assert_int_eq(vf_object_revision(out), 5);
    json_object_put(out);
    json_object_put(st_obj);

    struct json_object *upd = vf_test_json(
        "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"cpu\":{\"cores\":2}},"
        "\"status\":{\"phase\":\"Ignored\"}}");
    ck_assert_int_eq(vf_store_update(st, VM, upd, &out, &err), 0);
    ck_assert_int_eq(vf_object_revision(out), 6);
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 2);
    ck_assert_int_eq(vf_test_json_int(out, "spec.cpu.cores"), 2);
    ck_assert_str_eq(vf_test_json_str(out, "metadata.labels.app"), "web");
    ck_assert_str_eq(vf_test_json_str(out, "status.phase"), "Running");
    ck_assert_str_eq(vf_test_json_str(out, "metadata.uid"), uid);
    ck_assert_str_eq(vf_test_json_str(out, "metadata.creationTimestamp"), ts);
    json_object_put(out);

    /* The same update again changes nothing: no new resourceVersion. */
    ck_assert_int_eq(vf_store_update(st, VM, upd, &out, &err), 0);
    ck_assert_int_eq(vf_object_revision(out), 6);
    ck_assert_int_eq(vf_store_revision(st), 6);
    json_object_put(out);
    json_object_put(upd);

    /* Labels only: generation stays. */
    upd = vf_test_json("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"cpu\":{\"cores\":2}}}");
    ck_assert_int_eq(vf_store_update(st, VM, upd, &out, &err), 0);
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 2);
    ck_assert_ptr_null(vf_test_json_at(out, "metadata.labels"));
    ck_assert_int_eq(vf_object_revision(out), 7);
    json_object_put(out);
    json_object_put(upd);

    /* Missing objects. */
    upd = vf_test_json("{\"metadata\":{\"name\":\"zz\"}}");
    ck_assert_int_eq(vf_store_update(st, VM, upd, NULL, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
    ck_assert_str_eq(err.reason, "NotFound");
    ck_assert_str_eq(err.message, "VirtualMachine \"zz\" not found");
    json_object_put(upd);
    ck_assert_int_eq(vf_store_update_status(st, VM, "zz", NULL, 0, NULL, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);

    /* Delete returns the last copy with the delete's resourceVersion. */
    ck_assert_int_eq(vf_store_delete(st, VM, "a", 0, &out, &err), 0);
    ck_assert_str_eq(vf_object_name(out), "a");
    ck_assert_int_eq(vf_object_revision(out), 8);
    json_object_put(out);
    ck_assert_int_eq(vf_store_get(st, VM, "a", &got), -ENOENT);
    ck_assert_int_eq(vf_store_delete(st, VM, "a", 0, NULL, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
    ck_assert_int_eq(vf_store_count(st, VM), 2);
    json_object_put(a);
}
END_TEST

START_TEST(test_create_keeps_status_and_api_version)
{
    struct vf_error err = {0};
    struct json_object *obj = vf_test_json(
        "{\"apiVersion\":\"x.io/v9\",\"metadata\":{\"name\":\"n\",\"uid\":\"forged\","
        "\"resourceVersion\":\"777\",\"generation\":9,\"deletionTimestamp\":\"2020-01-01T00:00:00Z\","
        "\"ownerReferences\":[]},\"status\":{\"phase\":\"Ready\"}}");
    struct json_object *out = NULL;
    ck_assert_int_eq(vf_store_create(st, "Node", obj, &out, &err), 0);
    ck_assert_str_eq(vf_test_json_str(out, "apiVersion"), "x.io/v9");
    ck_assert_str_eq(vf_test_json_str(out, "status.phase"), "Ready");
    ck_assert_str_ne(vf_test_json_str(out, "metadata.uid"), "forged");
    ck_assert_str_eq(vf_test_json_str(out, "metadata.resourceVersion"), "1");
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 1);
    ck_assert_ptr_null(vf_test_json_at(out, "metadata.deletionTimestamp"));
    ck_assert_ptr_null(vf_test_json_at(out, "metadata.ownerReferences"));
    json_object_put(out);
    json_object_put(obj);
}
END_TEST

/* ---- resourceVersion --------------------------------------------------- */

START_TEST(test_rv_monotonic_across_reopen)
{
    struct vf_error err = {0};

    vf_store_close(st);
    open_store(3); /* tiny history: the log is trimmed, the revision must survive */
    for (int i = 0; i < 300; i++) {
        char name[16];
        snprintf(name, sizeof name, "o%d", i % 5);
        if (i < 5)
            create_put(VM, name);
        else {
            struct json_object *s = json_object_new_object();
            json_object_object_add(s, "i", json_object_new_int(i));
            ck_assert_int_eq(vf_store_update_status(st, VM, name, s, 0, NULL, &err), 0);
            json_object_put(s);
        }
    }
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "o%d", i);
        ck_assert_int_eq(vf_store_delete(st, VM, name, 0, NULL, &err), 0);
    }
    ck_assert_int_eq(vf_store_revision(st), 305);
    ck_assert_int_eq(vf_store_count(st, NULL), 0);
    vf_store_close(st);
    open_store(3);
    ck_assert_int_eq(vf_store_revision(st), 305);
    struct json_object *o = create(VM, "after", NULL);
    ck_assert_int_eq(vf_object_revision(o), 306);
    json_object_put(o);

    /* The log was trimmed in batches: it holds far fewer than 300 events. */
    sqlite3 *db;
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &s, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_int_le(sqlite3_column_int(s, 0), 3 + 128);
    sqlite3_finalize(s);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_stale_rv)
{
    struct vf_error err = {0};
    struct json_object *a = create(VM, "a", "{\"x\":1}"), *out = NULL;
    struct json_object *s = vf_test_json("{\"phase\":\"Running\"}");

    ck_assert_int_eq(vf_store_update_status(st, VM, "a", s, 1, NULL, &err), 0);
    /* a still carries resourceVersion "1"; the store is at 2. */
    json_object_object_add(json_object_object_get(a, "spec"), "x", json_object_new_int(2));
    ck_assert_int_eq(vf_store_update(st, VM, a, &out, &err), -ESTALE);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(err.status, 409);
    ck_assert_str_eq(err.reason, "Conflict");
    ck_assert_str_eq(err.field, "metadata.resourceVersion");
    ck_assert_str_eq(err.message, "VirtualMachine \"a\": resourceVersion \"1\" is stale (current "
                                  "is \"2\"); get the object again and retry");
    ck_assert_int_eq(vf_store_update_status(st, VM, "a", s, 1, NULL, &err), -ESTALE);
    ck_assert_int_eq(err.status, 409);
    ck_assert_int_eq(vf_store_delete(st, VM, "a", 1, NULL, &err), -ESTALE);
    ck_assert_int_eq(err.status, 409);
    ck_assert_int_eq(vf_store_revision(st), 2);

    /* With the current one it goes through. */
    json_object_object_add(json_object_object_get(a, "metadata"), "resourceVersion",
                           json_object_new_string("2"));
    ck_assert_int_eq(vf_store_update(st, VM, a, &out, &err), 0);
    ck_assert_int_eq(vf_object_revision(out), 3);
    json_object_put(out);

    /* Garbage is invalid, not stale. */
    json_object_object_add(json_object_object_get(a, "metadata"), "resourceVersion",
                           json_object_new_string("12abc"));
    ck_assert_int_eq(vf_store_update(st, VM, a, NULL, &err), -EINVAL);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(vf_store_delete(st, VM, "a", 3, NULL, &err), 0);
    json_object_put(s);
    json_object_put(a);
}
END_TEST

/* ---- generateName ------------------------------------------------------ */

START_TEST(test_generate_name)
{
    struct vf_error err = {0};
    struct json_object *obj = vf_test_json("{\"metadata\":{\"generateName\":\"evict-vm-\"}}");
    char seen[20][16];

    for (int i = 0; i < 20; i++) {
        struct json_object *out = NULL;
        ck_assert_int_eq(vf_store_create(st, "VirtualMachineOperation", obj, &out, &err), 0);
        const char *name = vf_object_name(out);
        ck_assert_uint_eq(strlen(name), strlen("evict-vm-") + 5);
        ck_assert_int_eq(strncmp(name, "evict-vm-", 9), 0);
        for (const char *c = name + 9; *c; c++)
            ck_assert_msg((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'), "%s", name);
        ck_assert_str_eq(vf_test_json_str(out, "metadata.generateName"), "evict-vm-");
        snprintf(seen[i], sizeof seen[i], "%s", name);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(seen[i], seen[j]);
        struct json_object *got = NULL;
        ck_assert_int_eq(vf_store_get(st, "VirtualMachineOperation", name, &got), 0);
        json_object_put(got);
        json_object_put(out);
    }
    ck_assert_int_eq(vf_store_count(st, "VirtualMachineOperation"), 20);
    json_object_put(obj);
}
END_TEST

/* ---- finalizers -------------------------------------------------------- */

START_TEST(test_finalizers)
{
    struct vf_error err = {0};
    struct rec rec = {0};
    struct json_object *obj = vf_test_json(
        "{\"metadata\":{\"name\":\"d\",\"finalizers\":[\"virtfleet.io/cleanup\"]},\"spec\":{}}");
    struct json_object *out = NULL, *got = NULL;

    ck_assert_int_eq(vf_store_create(st, "VirtualDisk", obj, NULL, &err), 0);
    json_object_put(obj);
    watch("VirtualDisk", vf_store_revision(st), rec_fn, &rec);

    /* Delete only marks it. */
    ck_assert_int_eq(vf_store_delete(st, "VirtualDisk", "d", 0, &out, &err), 0);
    ck_assert_ptr_nonnull(vf_test_json_str(out, "metadata.deletionTimestamp"));
    json_object_put(out);
    ck_assert_int_eq(vf_store_get(st, "VirtualDisk", "d", &got), 0);
    ck_assert_ptr_nonnull(vf_test_json_str(got, "metadata.deletionTimestamp"));
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(rec.type[0], VF_WATCH_MODIFIED);

    /* Deleting again changes nothing. */
    ck_assert_int_eq(vf_store_delete(st, "VirtualDisk", "d", 0, NULL, &err), 0);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(vf_store_revision(st), 2);

    /* Updates keep the mark; emptying the finalizers removes the object. */
    json_object_object_del(json_object_object_get(got, "metadata"), "deletionTimestamp");
    json_object_object_add(json_object_object_get(got, "metadata"), "finalizers",
                           json_object_new_array());
    ck_assert_int_eq(vf_store_update(st, "VirtualDisk", got, &out, &err), 0);
    ck_assert_str_eq(vf_object_name(out), "d");
    ck_assert_int_eq(vf_object_revision(out), 3);
    json_object_put(out);
    json_object_put(got);
    ck_assert_int_eq(vf_store_get(st, "VirtualDisk", "d", &got), -ENOENT);
    ck_assert_int_eq(rec.n, 2);
    ck_assert_int_eq(rec.type[1], VF_WATCH_DELETED);
    ck_assert_int_eq(rec.rv[1], 3);

    /* Without finalizers delete is immediate. */
    create_put("VirtualDisk", "e");
    ck_assert_int_eq(vf_store_delete(st, "VirtualDisk", "e", 0, NULL, &err), 0);
    ck_assert_int_eq(vf_store_get(st, "VirtualDisk", "e", &got), -ENOENT);
}
END_TEST

/* ---- watches ----------------------------------------------------------- */

START_TEST(test_watch_from_zero)
{
    struct vf_error err = {0};
    struct rec vms = {0}, all = {0};

    create_put(VM, "b");
    create_put(VM, "a");
    create_put("Node", "n");
    watch(VM, 0, rec_fn, &vms);
    watch(NULL, 0, rec_fn, &all);
    ck_assert_int_eq(vms.n, 2);
    ck_assert_str_eq(vms.name[0], "a");
    ck_assert_str_eq(vms.name[1], "b");
    ck_assert_int_eq(vms.type[0], VF_WATCH_ADDED);
    ck_assert_int_eq(vms.type[1], VF_WATCH_ADDED);
    ck_assert_int_eq(all.n, 3);
    ck_assert_str_eq(all.kind[0], "Node");

    create_put(VM, "c");
    struct json_object *s = vf_test_json("{\"phase\":\"Running\"}");
    ck_assert_int_eq(vf_store_update_status(st, VM, "a", s, 0, NULL, &err), 0);
    json_object_put(s);
    ck_assert_int_eq(vf_store_delete(st, VM, "b", 0, NULL, &err), 0);
    create_put("Node", "m");

    ck_assert_int_eq(vms.n, 5);
    ck_assert_int_eq(vms.type[2], VF_WATCH_ADDED);
    ck_assert_str_eq(vms.name[2], "c");
    ck_assert_int_eq(vms.type[3], VF_WATCH_MODIFIED);
    ck_assert_str_eq(vms.name[3], "a");
    ck_assert_int_eq(vms.type[4], VF_WATCH_DELETED);
    ck_assert_str_eq(vms.name[4], "b");
    for (int i = 3; i < vms.n; i++)
        ck_assert_int_gt(vms.rv[i], vms.rv[i - 1]);
    ck_assert_int_eq(all.n, 7);
    ck_assert_str_eq(all.kind[6], "Node");
    ck_assert_str_eq(all.name[6], "m");
}
END_TEST

START_TEST(test_watch_from_rv)
{
    struct vf_error err = {0};
    struct rec rec = {0};

    create_put(VM, "a");                       /* rv 1 */
    create_put(VM, "b");                       /* rv 2 */
    create_put("Node", "n");                   /* rv 3 */
    ck_assert_int_eq(vf_store_delete(st, VM, "a", 0, NULL, &err), 0); /* rv 4 */

    watch(VM, 1, rec_fn, &rec);
    ck_assert_int_eq(rec.n, 2);
    ck_assert_str_eq(rec.name[0], "b");
    ck_assert_int_eq(rec.type[0], VF_WATCH_ADDED);
    ck_assert_int_eq(rec.rv[0], 2);
    ck_assert_str_eq(rec.name[1], "a");
    ck_assert_int_eq(rec.type[1], VF_WATCH_DELETED);
    ck_assert_int_eq(rec.rv[1], 4);

    create_put(VM, "c");                       /* rv 5, live */
    ck_assert_int_eq(rec.n, 3);
    ck_assert_str_eq(rec.name[2], "c");
    ck_assert_int_eq(rec.rv[2], 5);

    /* From the current revision: nothing to replay. */
    struct rec now = {0};
    watch(VM, vf_store_revision(st), rec_fn, &now);
    ck_assert_int_eq(now.n, 0);
    create_put(VM, "d");
    ck_assert_int_eq(now.n, 1);
    ck_assert_int_eq(rec.n, 4);
}
END_TEST

START_TEST(test_watch_expired)
{
    struct vf_error err = {0};
    struct vf_store_watch *w = NULL;
    struct rec rec = {0};

    vf_store_close(st);
    open_store(5);
    create_put(VM, "a");
    for (int i = 0; i < 200; i++) {
        struct json_object *s = json_object_new_object();
        json_object_object_add(s, "i", json_object_new_int(i));
        ck_assert_int_eq(vf_store_update_status(st, VM, "a", s, 0, NULL, &err), 0);
        json_object_put(s);
    }
    ck_assert_int_eq(vf_store_watch_add(st, VM, 1, rec_fn, &rec, &w, &err), -ENODATA);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(err.status, 410);
    ck_assert_str_eq(err.reason, "Expired");
    ck_assert_msg(strstr(err.message, "resourceVersion \"1\" is too old"), "%s", err.message);
    ck_assert_int_eq(rec.n, 0);

    /* Newer than the store: also a relist. */
    ck_assert_int_eq(vf_store_watch_add(st, VM, 1000, rec_fn, &rec, &w, &err), -ENODATA);
    ck_assert_int_eq(err.status, 410);

    /* The recent past is still there. */
    watch(VM, vf_store_revision(st) - 3, rec_fn, &rec);
    ck_assert_int_eq(rec.n, 3);
    ck_assert_int_eq(rec.rv[2], vf_store_revision(st));
}
END_TEST

struct self_remover {
    struct vf_store_watch *self;
    struct vf_store_watch *victim; /* removed by this watcher's first call */
    int calls;
};

static void remove_self_fn(void *opaque, const char *kind, enum vf_watch_event type,
                           const struct json_object *obj)
{
    struct self_remover *s = opaque;
    s->calls++;
    if (s->victim) {
        vf_store_watch_remove(st, s->victim);
        s->victim = NULL;
    }
    vf_store_watch_remove(st, s->self);
}

START_TEST(test_watch_remove_during_delivery)
{
    struct self_remover first = {0}, second = {0};
    struct rec tail = {0};

    first.self = watch(VM, vf_store_revision(st), remove_self_fn, &first);
    second.self = watch(VM, vf_store_revision(st), remove_self_fn, &second);
    watch(VM, vf_store_revision(st), rec_fn, &tail);
    first.victim = second.self; /* removed before its turn on the same event */

    create_put(VM, "a");
    create_put(VM, "b");
    ck_assert_int_eq(first.calls, 1);
    ck_assert_int_eq(second.calls, 0);
    ck_assert_int_eq(tail.n, 2);

    /* Removed outside any delivery: freed at once and never called. */
    struct self_remover idle = {0};
    idle.self = watch(VM, vf_store_revision(st), remove_self_fn, &idle);
    vf_store_watch_remove(st, idle.self);
    create_put(VM, "c");
    ck_assert_int_eq(idle.calls, 0);
    ck_assert_int_eq(tail.n, 3);
}
END_TEST

/* Removing itself from inside the replay that watch_add runs: *out is set
 * before the replay starts, so the callback can name itself. */
static struct vf_store_watch *replay_w;
static int replay_calls;
static void replay_remove_fn(void *opaque, const char *kind, enum vf_watch_event type,
                             const struct json_object *obj)
{
    replay_calls++;
    vf_store_watch_remove(st, replay_w);
}

START_TEST(test_watch_remove_during_replay)
{
    struct vf_error err = {0};
    create_put(VM, "a");
    create_put(VM, "b");
    create_put(VM, "c");
    ck_assert_int_eq(vf_store_watch_add(st, VM, 0, replay_remove_fn, NULL, &replay_w, &err), 0);
    ck_assert_int_eq(replay_calls, 1);
    create_put(VM, "d");
    ck_assert_int_eq(replay_calls, 1);
}
END_TEST

struct chain {
    const char *prefix; /* of the names this watcher creates */
    int depth;      /* nesting of this callback right now */
    int max_depth;
    int created;
    int limit;
    char order[64][16];
    int n;
    int64_t rv_in_callback[64];
};

static void chain_fn(void *opaque, const char *kind, enum vf_watch_event type,
                     const struct json_object *obj)
{
    struct chain *c = opaque;
    struct vf_error err = {0};

    c->depth++;
    if (c->depth > c->max_depth)
        c->max_depth = c->depth;
    ck_assert_int_lt(c->n, 64);
    snprintf(c->order[c->n], sizeof c->order[0], "%s", vf_object_name(obj));
    c->rv_in_callback[c->n] = vf_object_revision(obj);
    c->n++;
    if (type == VF_WATCH_ADDED && c->created < c->limit) {
        char name[16];
        struct json_object *o = json_object_new_object(), *m = json_object_new_object(), *out = NULL;
        snprintf(name, sizeof name, "%s%d", c->prefix, ++c->created);
        json_object_object_add(m, "name", json_object_new_string(name));
        json_object_object_add(o, "metadata", m);
        /* The write commits now; its event comes after this call returns. */
        ck_assert_int_eq(vf_store_create(st, "Chain", o, &out, &err), 0);
        ck_assert_int_eq(vf_object_revision(out), vf_store_revision(st));
        ck_assert_str_eq(c->order[c->n - 1], vf_object_name(obj));
        json_object_put(out);
        json_object_put(o);
    }
    c->depth--;
}

START_TEST(test_watch_reentrant_write)
{
    struct chain c = {.prefix = "chain", .limit = 50};
    struct rec other = {0};

    watch("Chain", 0, chain_fn, &c);
    watch("Chain", 0, rec_fn, &other);
    create_put("Chain", "start");

    /* start, chain1 .. chain50, each delivered after the one that made it. */
    ck_assert_int_eq(c.n, 51);
    ck_assert_int_eq(c.max_depth, 1);
    ck_assert_str_eq(c.order[0], "start");
    ck_assert_str_eq(c.order[1], "chain1");
    ck_assert_str_eq(c.order[50], "chain50");
    for (int i = 1; i < c.n; i++)
        ck_assert_int_eq(c.rv_in_callback[i], c.rv_in_callback[i - 1] + 1);
    /* The second watcher sees the same order. */
    ck_assert_int_eq(other.n, 51);
    for (int i = 0; i < other.n; i++)
        ck_assert_str_eq(other.name[i], c.order[i]);

    /* Writes made during a replay come after the replay. */
    struct chain r = {.prefix = "replay", .limit = 2};
    watch("Chain", 0, chain_fn, &r);
    ck_assert_int_eq(r.max_depth, 1);
    /* 51 replayed, then the two it created (each replayed ADDED creates one). */
    ck_assert_int_eq(r.n, 53);
    ck_assert_str_eq(r.order[51], "replay1");
    ck_assert_str_eq(r.order[52], "replay2");
    ck_assert_int_eq(r.rv_in_callback[51], 52);
    ck_assert_int_eq(r.rv_in_callback[52], 53);
}
END_TEST

/* A watcher added by a callback, after that callback wrote: the write is in
 * its replay, so the queued event must not reach it a second time. */
static struct rec late_rec;
static struct vf_store_watch *late_w;
static void add_late_fn(void *opaque, const char *kind, enum vf_watch_event type,
                        const struct json_object *obj)
{
    if (late_w || strcmp(vf_object_name(obj), "a") != 0)
        return;
    create_put(VM, "b");
    late_w = watch(VM, 0, rec_fn, &late_rec);
}

START_TEST(test_watch_added_during_delivery)
{
    struct rec first = {0};
    watch(VM, vf_store_revision(st), rec_fn, &first);
    watch(VM, vf_store_revision(st), add_late_fn, NULL);
    create_put(VM, "a");
    ck_assert_ptr_nonnull(late_w);
    ck_assert_int_eq(late_rec.n, 2); /* replayed a and b, nothing twice */
    ck_assert_str_eq(late_rec.name[0], "a");
    ck_assert_str_eq(late_rec.name[1], "b");
    ck_assert_int_eq(first.n, 2);
    ck_assert_str_eq(first.name[1], "b");
    create_put(VM, "c");
    ck_assert_int_eq(late_rec.n, 3);
    ck_assert_str_eq(late_rec.name[2], "c");
}
END_TEST

/* ---- crash safety ------------------------------------------------------ */

#define CRASH_ROUNDS 10

static void crash_child(int fd, int round)
{
    struct vf_store *cs = NULL;
    struct vf_error err = {0};
    if (vf_store_open(path, NULL, &cs, &err) < 0)
        _exit(2);
    for (int i = 0;; i++) {
        char name[32], line[40];
        struct json_object *o = json_object_new_object(), *m = json_object_new_object();
        snprintf(name, sizeof name, "r%d-%d", round, i);
        json_object_object_add(m, "name", json_object_new_string(name));
        json_object_object_add(o, "metadata", m);
        json_object_object_add(o, "spec", json_object_new_string("x"));
        if (vf_store_create(cs, VM, o, NULL, &err) < 0)
            _exit(3);
        json_object_put(o);
        int n = snprintf(line, sizeof line, "%s\n", name);
        if (write(fd, line, (size_t)n) != n)
            _exit(4);
    }
}

START_TEST(test_crash_safety)
{
    size_t cap = 1024, count = 0;
    char **acked = malloc(cap * sizeof *acked);

    vf_store_close(st);
    st = NULL;
    srand((unsigned)getpid());
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        int fds[2], status;
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(fds[1], round);
        }
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        int want = 1 + rand() % 200, got = 0;
        char line[64];
        while (got < want && fgets(line, sizeof line, f)) {
            ck_assert_msg(strchr(line, '\n'), "partial line %s", line);
            line[strcspn(line, "\n")] = '\0';
            if (count == cap)
                acked = realloc(acked, (cap *= 2) * sizeof *acked);
            acked[count++] = strdup(line);
            got++;
        }
        ck_assert_int_eq(got, want);
        usleep((useconds_t)(rand() % 3000)); /* land somewhere inside a write */
        kill(pid, SIGKILL);
        /* Names written before the kill were acknowledged too. */
        while (fgets(line, sizeof line, f)) {
            if (!strchr(line, '\n'))
                break;
            line[strcspn(line, "\n")] = '\0';
            if (count == cap)
                acked = realloc(acked, (cap *= 2) * sizeof *acked);
            acked[count++] = strdup(line);
        }
        fclose(f);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "child did not die by SIGKILL (status %d)", status);
    }

    open_store(0);
    for (size_t i = 0; i < count; i++) {
        struct json_object *o = NULL;
        ck_assert_msg(vf_store_get(st, VM, acked[i], &o) == 0, "acknowledged %s is lost",
                      acked[i]);
        ck_assert_str_eq(vf_object_name(o), acked[i]);
        json_object_put(o);
        free(acked[i]);
    }
    free(acked);
    ck_assert_int_ge(vf_store_count(st, VM), (int64_t)count);
    ck_assert_int_ge(vf_store_revision(st), (int64_t)count);
    ck_assert_int_eq(vf_store_revision(st), vf_store_count(st, VM));
    vf_store_close(st);
    st = NULL;

    sqlite3 *db;
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    /* One TCase per behaviour, each with a fresh store. */
#define ADD_CASE(name, fn)                                     \
    do {                                                       \
        TCase *tc = tcase_create(name);                        \
        tcase_add_checked_fixture(tc, setup, teardown);        \
        tcase_set_timeout(tc, 120);                            \
        tcase_add_test(tc, fn);                                \
        suite_add_tcase(s, tc);                                \
    } while (0)
    ADD_CASE("open", test_open_mode_and_schema);
    ADD_CASE("crud", test_crud);
    ADD_CASE("create_metadata", test_create_keeps_status_and_api_version);
    ADD_CASE("rv_monotonic", test_rv_monotonic_across_reopen);
    ADD_CASE("stale_rv", test_stale_rv);
    ADD_CASE("generate_name", test_generate_name);
    ADD_CASE("finalizers", test_finalizers);
    ADD_CASE("watch_from_zero", test_watch_from_zero);
    ADD_CASE("watch_from_rv", test_watch_from_rv);
    ADD_CASE("watch_expired", test_watch_expired);
    ADD_CASE("watch_remove_during_delivery", test_watch_remove_during_delivery);
    ADD_CASE("watch_remove_during_replay", test_watch_remove_during_replay);
    ADD_CASE("watch_reentrant_write", test_watch_reentrant_write);
    ADD_CASE("watch_added_during_delivery", test_watch_added_during_delivery);
    ADD_CASE("crash_safety", test_crash_safety);
#undef ADD_CASE
    return s;
}

int main(void)
{
    return vf_test_run(store_suite());
}
