/* The commands, kubectl-shaped: get, describe, create, apply, delete,
 * modules, version, cordon, uncordon.  Each error is reported here, once,
 * on stderr, and turned into an exit status (see commands.h). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "commands.h"
#include "manifest.h"
#include "render.h"

#define MERGE_PATCH "application/merge-patch+json"
#define APPLY_ATTEMPTS 3

/* ---- reporting ------------------------------------------------------- */

static int transport_failed(struct vf_cli *cli, int rc)
{
    fprintf(stderr, "error: %s\n", vf_client_error(cli->client));
    return rc == -ENOTCONN ? VF_EXIT_CONNECT : VF_EXIT_ERROR;
}

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return VF_EXIT_ERROR;
}

/* error: virtualmachines "x" not found
 * error: VirtualMachineClass "c": spec.cpu: field is immutable */
static void http_failed(const struct vf_kind_info *k, const char *name, const struct vf_response *r)
{
    const char *reason, *message, *field;
    char quoted[300];

    vf_response_error(r, &reason, &message, &field);
    if (r->status == 404 && k && name && (!*reason || strcmp(reason, "NotFound") == 0)) {
        fprintf(stderr, "error: %s \"%s\" not found\n", k->plural, name);
        return;
    }
    fputs("error: ", stderr);
    snprintf(quoted, sizeof quoted, "\"%s\"", name ? name : "");
    /* Name the object unless the server's message already does. */
    if (k && name && !strstr(message, quoted))
        fprintf(stderr, "%s %s: ", k->kind, quoted);
    if (*field && strncmp(message, field, strlen(field)) != 0)
        fprintf(stderr, "%s: ", field);
    if (*message)
        fprintf(stderr, "%s\n", message);
    else
        fprintf(stderr, "the server answered HTTP %ld%s%s\n", r->status, *reason ? " " : "", reason);
}

/* Transport failures are reported and turned into an exit status; any HTTP
 * answer returns 0 for the caller to look at. */
static int call(struct vf_cli *cli, const char *method, const char *path, const char *ctype,
                struct json_object *body, struct vf_response *resp)
{
    int rc;

    if (!path) {
        memset(resp, 0, sizeof *resp);
        return out_of_memory();
    }
    rc = vf_client_request(cli->client, method, path, ctype, body, resp);
    return rc < 0 ? transport_failed(cli, rc) : VF_EXIT_OK;
}

/* GET path expecting success: 0 with resp filled, or the exit status. */
static int fetch(struct vf_cli *cli, const char *path, const struct vf_kind_info *k, const char *name,
                 struct vf_response *resp)
{
    int rc = call(cli, "GET", path, NULL, NULL, resp);
    if (rc)
        return rc;
    if (resp->status >= 400 || !resp->body) {
        http_failed(k, name, resp);
        vf_response_clear(resp);
        return VF_EXIT_ERROR;
    }
    return VF_EXIT_OK;
}

static int load_kinds(struct vf_cli *cli)
{
    struct vf_response r;
    char err[256];
    int rc;

    if (cli->kinds.loaded)
        return VF_EXIT_OK;
    rc = fetch(cli, VF_API_PREFIX, NULL, NULL, &r);
    if (rc)
        return rc;
    rc = vf_kinds_cache_parse(&cli->kinds, r.body, err, sizeof err);
    vf_response_clear(&r);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", err);
        return VF_EXIT_ERROR;
    }
    return VF_EXIT_OK;
}

/* The kind the user means; the prefix (e.g. "file.yaml:3:1: ") locates a manifest. */
static int resolve(struct vf_cli *cli, const char *word, const char *where, const struct vf_kind_info **out)
{
    int rc = load_kinds(cli);
    char *names;

    if (rc)
        return rc;
    *out = vf_kinds_cache_find(&cli->kinds, word);
    if (*out)
        return VF_EXIT_OK;
    names = vf_kinds_cache_names(&cli->kinds);
    fprintf(stderr, "error: %sthe server doesn't have a resource type \"%s\" (it serves: %s)\n",
            where ? where : "", word, names && *names ? names : "none");
    free(names);
    return VF_EXIT_ERROR;
}

static const char *object_name(struct json_object *obj)
{
    struct json_object *v = vf_render_lookup(obj, "metadata.name");
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static const char *object_rv(struct json_object *obj)
{
    struct json_object *v = vf_render_lookup(obj, "metadata.resourceVersion");
    return v ? json_object_get_string(v) : NULL;
}

/* ---- get ------------------------------------------------------------- */

struct printer {
    struct vf_cli *cli;
    const struct vf_kind_info *k;
    struct vf_table *table;
    bool printed;
};

static bool tabular(const struct vf_cli *cli)
{
    return cli->output == VF_OUTPUT_TABLE || cli->output == VF_OUTPUT_WIDE;
}

/* One object as a stream element: a table row (not yet flushed), a name, or
 * a whole document. */
static int print_object(struct printer *p, struct json_object *obj)
{
    const char *name = object_name(obj);

    switch (p->cli->output) {
    case VF_OUTPUT_TABLE:
    case VF_OUTPUT_WIDE:
        vf_table_add_object(p->table, obj, p->k->columns, p->k->n_columns,
                            p->cli->output == VF_OUTPUT_WIDE, time(NULL));
        break;
    case VF_OUTPUT_NAME:
        printf("%s/%s\n", p->k->singular, name ? name : "");
        break;
    case VF_OUTPUT_JSON:
        vf_render_json(stdout, obj);
        break;
    case VF_OUTPUT_YAML:
        if (p->printed)
            fputs("---\n", stdout);
        vf_render_yaml(stdout, obj);
        break;
    case VF_OUTPUT_JSONPATH:
        if (vf_render_jsonpath(stdout, obj, p->cli->jsonpath) < 0) {
            fprintf(stderr, "error: cannot print the jsonpath output (out of memory, or a write error)\n");
            return VF_EXIT_ERROR;
        }
        break;
    }
    p->printed = true;
    return VF_EXIT_OK;
}

/* A set of objects at once: a table, names, or one document (a List when
 * there is more than one object or the user asked for a collection).  As
 * kubectl, a jsonpath template applies once to that document ({.items[*]...}). */
static int print_set(struct printer *p, struct json_object *items, bool collection, const char *rv)
{
    size_t n = json_object_array_length(items);
    struct json_object *doc;
    int rc = VF_EXIT_OK;

    /* A watch prints a stream of objects, the first ones included. */
    if (tabular(p->cli) || p->cli->output == VF_OUTPUT_NAME || p->cli->watch) {
        for (size_t i = 0; i < n && rc == VF_EXIT_OK; i++)
            rc = print_object(p, json_object_array_get_idx(items, i));
        if (p->table)
            vf_table_flush(p->table, stdout);
        return rc;
    }
    if (!collection && n == 1)
        return print_object(p, json_object_array_get_idx(items, 0));
    doc = json_object_new_object();
    if (!doc)
        return out_of_memory();
    json_object_object_add(doc, "apiVersion", json_object_new_string("virtfleet.io/v1alpha2"));
    json_object_object_add(doc, "kind", json_object_new_string("List"));
    json_object_object_add(doc, "metadata", json_object_new_object());
    json_object_object_add(vf_render_lookup(doc, "metadata"), "resourceVersion",
                           json_object_new_string(rv ? rv : ""));
    json_object_object_add(doc, "items", json_object_get(items));
    rc = print_object(p, doc);
    json_object_put(doc);
    return rc;
}

struct watch_state {
    struct printer *p;
    const char *name;       /* only this object, or NULL */
    char *rv;               /* where to resume (owned) */
    int exit;
};

static const char *event_error(struct json_object *obj)
{
    struct json_object *e = vf_render_lookup(obj, "error");
    struct json_object *m = vf_render_lookup(e ? e : obj, "message");
    return json_object_is_type(m, json_type_string) ? json_object_get_string(m) : "the server ended the watch";
}

static int on_watch_event(void *opaque, const char *type, struct json_object *obj)
{
    struct watch_state *st = opaque;
    const char *rv;

    if (strcmp(type, "ERROR") == 0) {
        fprintf(stderr, "error: watch: %s\n", event_error(obj));
        st->exit = VF_EXIT_ERROR;
        return 1;
    }
    rv = object_rv(obj);
    if (rv) {
        char *copy = strdup(rv);
        if (copy) {
            free(st->rv);
            st->rv = copy;
        }
    }
    if (st->name && (!object_name(obj) || strcmp(object_name(obj), st->name) != 0))
        return 0;
    if (print_object(st->p, obj) != VF_EXIT_OK) {
        st->exit = VF_EXIT_USAGE;
        return 1;
    }
    if (st->p->table)
        vf_table_flush(st->p->table, stdout);
    fflush(stdout);
    return 0;
}

/* Ctrl+C is how a watch ends: a normal exit for scripts.  Output is flushed
 * line by line, so nothing is lost by leaving at once. */
static void on_interrupt(int sig)
{
    (void)sig;
    _exit(VF_EXIT_OK);
}

static int watch_loop(struct vf_cli *cli, struct watch_state *st)
{
    struct sigaction sa = { .sa_handler = on_interrupt };
    bool stopped;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        struct vf_response resp;
        char *path = vf_client_path(st->p->k->plural, NULL, cli->selector, true, st->rv);
        int rc;

        if (!path)
            return out_of_memory();
        rc = vf_client_watch(cli->client, path, 0, on_watch_event, st, &stopped, &resp);
        free(path);
        if (rc < 0)
            return transport_failed(cli, rc);
        if (resp.status >= 400) {
            http_failed(st->p->k, st->name, &resp);
            vf_response_clear(&resp);
            return VF_EXIT_ERROR;
        }
        if (stopped)
            return st->exit;
        /* The daemon closed the stream (restart, idle limit): resume after the
         * last event seen, so nothing is shown twice or missed. */
        sleep(1);
    }
}

static int get_names(struct vf_cli *cli, struct printer *p, int argc, char **args, struct json_object *items)
{
    int status = VF_EXIT_OK;

    for (int i = 0; i < argc; i++) {
        struct vf_response r;
        char *path = vf_client_path(p->k->plural, args[i], NULL, false, NULL);
        int rc = fetch(cli, path, p->k, args[i], &r);
        free(path);
        if (rc == VF_EXIT_CONNECT)
            return rc;
        if (rc) {
            status = rc;
            continue;
        }
        json_object_array_add(items, json_object_get(r.body));
        vf_response_clear(&r);
    }
    return status;
}

int vf_cmd_get(struct vf_cli *cli, int argc, char **args)
{
    struct printer p = { .cli = cli };
    struct watch_state st = { .p = &p };
    struct json_object *items = NULL;
    int status, rc;

    if (argc < 1) {
        fprintf(stderr, "error: name the kind of resource to get, e.g. virtfleet get vm\n");
        return VF_EXIT_USAGE;
    }
    if ((cli->watch || cli->watch_only) && argc > 2) {
        fprintf(stderr, "error: a watch follows one object or a whole kind, not several names\n");
        return VF_EXIT_USAGE;
    }
    status = resolve(cli, args[0], NULL, &p.k);
    if (status)
        return status;
    if (tabular(cli)) {
        p.table = vf_table_for_kind(p.k->columns, p.k->n_columns, cli->output == VF_OUTPUT_WIDE);
        if (!p.table)
            return out_of_memory();
    }

    if (argc > 1) {
        items = json_object_new_array();
        if (!items) {
            vf_table_free(p.table);
            return out_of_memory();
        }
        status = get_names(cli, &p, argc - 1, args + 1, items);
        if (status == VF_EXIT_CONNECT)
            goto out;
        if (json_object_array_length(items) > 0) {
            st.rv = object_rv(json_object_array_get_idx(items, 0)) ?
                    strdup(object_rv(json_object_array_get_idx(items, 0))) : NULL;
            if (!cli->watch_only && (rc = print_set(&p, items, argc > 2, NULL)) != VF_EXIT_OK)
                status = rc;
        }
        if (status != VF_EXIT_OK || !(cli->watch || cli->watch_only))
            goto out;
        st.name = args[1];
    } else {
        struct vf_response r;
        char *path = vf_client_path(p.k->plural, NULL, cli->selector, false, NULL);
        status = fetch(cli, path, p.k, NULL, &r);
        free(path);
        if (status)
            goto out;
        items = json_object_get(vf_render_lookup(r.body, "items"));
        if (object_rv(r.body))
            st.rv = strdup(object_rv(r.body));
        vf_response_clear(&r);
        if (!json_object_is_type(items, json_type_array)) {
            fprintf(stderr, "error: the server's list of %s has no items\n", p.k->plural);
            status = VF_EXIT_ERROR;
            goto out;
        }
        if (!cli->watch_only) {
            if (json_object_array_length(items) == 0 && (tabular(cli) || cli->output == VF_OUTPUT_NAME)) {
                if (!cli->watch)
                    fprintf(stderr, "No resources found.\n");
            } else if ((status = print_set(&p, items, true, st.rv)) != VF_EXIT_OK) {
                goto out;
            }
        }
        if (!(cli->watch || cli->watch_only))
            goto out;
    }
    fflush(stdout);
    status = watch_loop(cli, &st);
out:
    json_object_put(items);
    vf_table_free(p.table);
    free(st.rv);
    return status;
}

/* ---- describe -------------------------------------------------------- */

int vf_cmd_describe(struct vf_cli *cli, int argc, char **args)
{
    const struct vf_kind_info *k;
    struct json_object *items;
    int status;

    if (argc < 1) {
        fprintf(stderr, "error: name the kind of resource to describe, e.g. virtfleet describe vm linux-vm\n");
        return VF_EXIT_USAGE;
    }
    status = resolve(cli, args[0], NULL, &k);
    if (status)
        return status;
    items = json_object_new_array();
    if (!items)
        return out_of_memory();
    if (argc > 1) {
        struct printer p = { .cli = cli, .k = k };
        status = get_names(cli, &p, argc - 1, args + 1, items);
    } else {
        struct vf_response r;
        char *path = vf_client_path(k->plural, NULL, cli->selector, false, NULL);
        status = fetch(cli, path, k, NULL, &r);
        free(path);
        if (status == VF_EXIT_OK) {
            struct json_object *list = vf_render_lookup(r.body, "items");
            for (size_t i = 0; json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++)
                json_object_array_add(items, json_object_get(json_object_array_get_idx(list, i)));
            vf_response_clear(&r);
            if (json_object_array_length(items) == 0)
                fprintf(stderr, "No resources found.\n");
        }
    }
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        if (i)
            putchar('\n');
        vf_render_describe(stdout, json_object_array_get_idx(items, i), time(NULL));
    }
    json_object_put(items);
    return status;
}

/* ---- manifests: create, apply, delete -f ------------------------------ */

struct item {
    struct json_object *obj;        /* borrowed from the manifest */
    const struct vf_kind_info *k;
    const char *name;               /* NULL with generateName */
    const char *generate_name;
    char where[512];                /* "file:line:col: " */
};

struct items {
    struct vf_manifest *manifests;
    size_t n_manifests;
    struct item *v;
    size_t n;
};

static void items_free(struct items *it)
{
    for (size_t i = 0; i < it->n_manifests; i++)
        vf_manifest_free(&it->manifests[i]);
    free(it->manifests);
    free(it->v);
    memset(it, 0, sizeof *it);
}

static const char *string_at(struct json_object *obj, const char *path)
{
    struct json_object *v = vf_render_lookup(obj, path);
    return json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0 ?
           json_object_get_string(v) : NULL;
}

/* Check one object from a manifest and find its kind; errors name the place. */
static int add_item(struct vf_cli *cli, struct items *it, struct json_object *obj, const char *file,
                    unsigned line, unsigned column)
{
    struct item *x;
    const char *kind;

    x = realloc(it->v, (it->n + 1) * sizeof *x);
    if (!x)
        return out_of_memory();
    it->v = x;
    x = &it->v[it->n];
    memset(x, 0, sizeof *x);
    x->obj = obj;
    snprintf(x->where, sizeof x->where, "%s:%u:%u: ", file, line, column);
    if (!json_object_is_type(obj, json_type_object)) {
        fprintf(stderr, "error: %sa manifest must be a mapping with apiVersion, kind, metadata and spec\n",
                x->where);
        return VF_EXIT_ERROR;
    }
    kind = string_at(obj, "kind");
    if (!kind) {
        fprintf(stderr, "error: %skind is missing\n", x->where);
        return VF_EXIT_ERROR;
    }
    x->name = string_at(obj, "metadata.name");
    x->generate_name = string_at(obj, "metadata.generateName");
    if (!x->name && !x->generate_name) {
        fprintf(stderr, "error: %smetadata.name (or metadata.generateName) is missing\n", x->where);
        return VF_EXIT_ERROR;
    }
    int rc = resolve(cli, kind, x->where, &x->k);
    if (rc == VF_EXIT_OK)
        it->n++;
    return rc;
}

/* Read every -f file, then check every object, before anything is sent: a
 * typo in the third document must not leave the first two applied. */
static int load_items(struct vf_cli *cli, struct items *it)
{
    int status = VF_EXIT_OK;
    char err[1024];

    memset(it, 0, sizeof *it);
    if (cli->n_files == 0) {
        fprintf(stderr, "error: give the manifest with -f FILE (or -f - for standard input)\n");
        return VF_EXIT_USAGE;
    }
    it->manifests = calloc(cli->n_files, sizeof *it->manifests);
    if (!it->manifests)
        return out_of_memory();
    for (size_t f = 0; f < cli->n_files; f++) {
        if (vf_manifest_load(cli->files[f], &it->manifests[f], err, sizeof err) < 0) {
            fprintf(stderr, "error: %s\n", err);
            return VF_EXIT_ERROR;
        }
        it->n_manifests++;
    }
    for (size_t f = 0; f < it->n_manifests; f++) {
        struct vf_manifest *m = &it->manifests[f];
        for (size_t d = 0; d < m->n; d++) {
            struct vf_manifest_doc *doc = &m->docs[d];
            struct json_object *list = vf_render_lookup(doc->obj, "items");
            const char *kind = string_at(doc->obj, "kind");
            int rc;
            /* A List (what get -o json|yaml prints) applies item by item. */
            if (kind && strcmp(kind, "List") == 0 && json_object_is_type(list, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                    rc = add_item(cli, it, json_object_array_get_idx(list, i), m->name, doc->line, doc->column);
                    if (rc == VF_EXIT_CONNECT)
                        return rc;
                    if (rc)
                        status = rc;
                }
                continue;
            }
            rc = add_item(cli, it, doc->obj, m->name, doc->line, doc->column);
            if (rc == VF_EXIT_CONNECT)
                return rc;
            if (rc)
                status = rc;
        }
    }
    if (status == VF_EXIT_OK && it->n == 0) {
        fprintf(stderr, "error: no objects in %s\n", cli->n_files == 1 ? it->manifests[0].name : "the files");
        status = VF_EXIT_ERROR;
    }
    return status;
}

/* POST; prints "kind/name created".  Returns the exit status for this item;
 * *conflict is set (and nothing reported) on AlreadyExists when asked for. */
static int create_item(struct vf_cli *cli, const struct item *x, bool *conflict)
{
    struct vf_response r;
    char *path = vf_client_path(x->k->plural, NULL, NULL, false, NULL);
    int rc = call(cli, "POST", path, NULL, x->obj, &r);
    const char *name;

    free(path);
    if (rc)
        return rc;
    if (conflict && r.status == 409) {
        *conflict = true;
        vf_response_clear(&r);
        return VF_EXIT_OK;
    }
    if (r.status >= 400) {
        http_failed(x->k, x->name ? x->name : x->generate_name, &r);
        vf_response_clear(&r);
        return VF_EXIT_ERROR;
    }
    name = object_name(r.body);
    printf("%s/%s created\n", x->k->singular, name ? name : x->name ? x->name : x->generate_name);
    vf_response_clear(&r);
    return VF_EXIT_OK;
}

static int create_one(struct vf_cli *cli, const struct item *x)
{
    return create_item(cli, x, NULL);
}

/* One refused object does not stop the others, as with kubectl; an
 * unreachable daemon stops everything. */
static int for_each_item(struct vf_cli *cli, const struct items *it,
                         int (*fn)(struct vf_cli *, const struct item *))
{
    int status = VF_EXIT_OK;

    for (size_t i = 0; i < it->n; i++) {
        int rc = fn(cli, &it->v[i]);
        if (rc == VF_EXIT_CONNECT)
            return rc;
        if (rc)
            status = rc;
    }
    return status;
}

int vf_cmd_create(struct vf_cli *cli, int argc, char **args)
{
    struct items it;
    int status;

    (void)args;
    if (argc > 0) {
        fprintf(stderr, "error: create takes its objects from -f FILE only\n");
        return VF_EXIT_USAGE;
    }
    status = load_items(cli, &it);
    if (status == VF_EXIT_OK)
        status = for_each_item(cli, &it, create_one);
    items_free(&it);
    return status;
}

static bool same_json(struct json_object *a, struct json_object *b)
{
    /* An absent map and an empty one mean the same to the server. */
    if (json_object_is_type(a, json_type_object) && json_object_object_length(a) == 0)
        a = NULL;
    if (json_object_is_type(b, json_type_object) && json_object_object_length(b) == 0)
        b = NULL;
    return json_object_equal(a, b);
}

/* Do a and b say the same thing where the user writes: every top-level part
 * but apiVersion, kind, metadata and status, plus labels. */
static bool same_content(struct json_object *a, struct json_object *b)
{
    if (!same_json(vf_render_lookup(a, "metadata.labels"), vf_render_lookup(b, "metadata.labels")) ||
        !same_json(vf_render_lookup(a, "spec"), vf_render_lookup(b, "spec")))
        return false;
    json_object_object_foreach(a, key, val) {
        struct json_object *other = NULL;
        if (!strcmp(key, "apiVersion") || !strcmp(key, "kind") || !strcmp(key, "metadata") ||
            !strcmp(key, "status") || !strcmp(key, "spec"))
            continue;
        json_object_object_get_ex(b, key, &other);
        if (!same_json(val, other))
            return false;
    }
    return true;
}

/* Create if absent, else replace with the server's resourceVersion; retried
 * when someone else wrote in between (409). */
static int apply_one(struct vf_cli *cli, const struct item *x)
{
    char *path;
    int rc = VF_EXIT_OK;

    if (!x->name)
        return create_item(cli, x, NULL);
    path = vf_client_path(x->k->plural, x->name, NULL, false, NULL);
    if (!path)
        return out_of_memory();
    for (int attempt = 1; attempt <= APPLY_ATTEMPTS; attempt++) {
        struct vf_response cur, put;
        struct json_object *desired;
        bool conflict = false;

        rc = call(cli, "GET", path, NULL, NULL, &cur);
        if (rc)
            break;
        if (cur.status == 404) {
            vf_response_clear(&cur);
            rc = create_item(cli, x, &conflict);
            if (rc || !conflict)
                break;
            continue;       /* created by someone else meanwhile: replace it */
        }
        if (cur.status >= 400 || !cur.body) {
            http_failed(x->k, x->name, &cur);
            vf_response_clear(&cur);
            rc = VF_EXIT_ERROR;
            break;
        }
        if (same_content(x->obj, cur.body)) {
            printf("%s/%s unchanged\n", x->k->singular, x->name);
            vf_response_clear(&cur);
            break;
        }
        desired = NULL;
        if (json_object_deep_copy(x->obj, &desired, NULL) < 0 || !desired) {
            vf_response_clear(&cur);
            rc = out_of_memory();
            break;
        }
        {
            struct json_object *meta = vf_render_lookup(desired, "metadata");
            const char *rv = object_rv(cur.body);
            json_object_object_add(meta, "resourceVersion", json_object_new_string(rv ? rv : ""));
        }
        rc = call(cli, "PUT", path, NULL, desired, &put);
        json_object_put(desired);
        if (rc) {
            vf_response_clear(&cur);
            break;
        }
        if (put.status == 409 && attempt < APPLY_ATTEMPTS) {
            vf_response_clear(&cur);
            vf_response_clear(&put);
            continue;
        }
        if (put.status >= 400) {
            http_failed(x->k, x->name, &put);
            rc = VF_EXIT_ERROR;
        } else {
            /* The server may fill defaults the manifest leaves out: judge by
             * what it stored before and after. */
            printf("%s/%s %s\n", x->k->singular, x->name,
                   put.body && same_content(cur.body, put.body) ? "unchanged" : "configured");
        }
        vf_response_clear(&cur);
        vf_response_clear(&put);
        break;
    }
    free(path);
    return rc;
}

int vf_cmd_apply(struct vf_cli *cli, int argc, char **args)
{
    struct items it;
    int status;

    (void)args;
    if (argc > 0) {
        fprintf(stderr, "error: apply takes its objects from -f FILE only\n");
        return VF_EXIT_USAGE;
    }
    status = load_items(cli, &it);
    if (status == VF_EXIT_OK)
        status = for_each_item(cli, &it, apply_one);
    items_free(&it);
    return status;
}

/* ---- delete ---------------------------------------------------------- */

struct gone_state {
    const char *name;
    bool gone;
    int exit;
};

static int on_gone_event(void *opaque, const char *type, struct json_object *obj)
{
    struct gone_state *st = opaque;
    const char *name = object_name(obj);

    if (strcmp(type, "ERROR") == 0) {
        fprintf(stderr, "error: watch: %s\n", event_error(obj));
        st->exit = VF_EXIT_ERROR;
        return 1;
    }
    if (strcmp(type, "DELETED") == 0 && name && strcmp(name, st->name) == 0) {
        st->gone = true;
        return 1;
    }
    return 0;
}

static int wait_gone(struct vf_cli *cli, const struct vf_kind_info *k, const char *name, time_t deadline)
{
    for (;;) {
        struct gone_state st = { .name = name };
        struct vf_response r;
        char *path = vf_client_path(k->plural, name, NULL, false, NULL);
        long left = 0;
        bool stopped;
        int rc = call(cli, "GET", path, NULL, NULL, &r);

        free(path);
        if (rc)
            return rc;
        if (r.status == 404) {
            vf_response_clear(&r);
            return VF_EXIT_OK;
        }
        if (r.status >= 400 || !r.body) {
            http_failed(k, name, &r);
            vf_response_clear(&r);
            return VF_EXIT_ERROR;
        }
        if (deadline) {
            left = (long)(deadline - time(NULL));
            if (left <= 0)
                rc = -ETIMEDOUT;
        }
        /* Watch from the object's own version: its deletion comes after it. */
        path = rc ? NULL : vf_client_path(k->plural, NULL, NULL, true, object_rv(r.body));
        vf_response_clear(&r);
        if (!rc && !path)
            return out_of_memory();
        if (!rc) {
            rc = vf_client_watch(cli->client, path, left, on_gone_event, &st, &stopped, &r);
            free(path);
        }
        if (rc == -ETIMEDOUT) {
            fprintf(stderr, "error: %s \"%s\" still exists after %lds; wait longer with --timeout SECONDS\n",
                    k->singular, name, cli->timeout);
            return VF_EXIT_ERROR;
        }
        if (rc < 0)
            return transport_failed(cli, rc);
        if (r.status >= 400) {
            http_failed(k, NULL, &r);
            vf_response_clear(&r);
            return VF_EXIT_ERROR;
        }
        if (st.exit)
            return st.exit;
        if (st.gone)
            return VF_EXIT_OK;
    }
}

static int delete_one(struct vf_cli *cli, const struct vf_kind_info *k, const char *name)
{
    struct vf_response r;
    char *path = vf_client_path(k->plural, name, NULL, false, NULL);
    int rc = call(cli, "DELETE", path, NULL, NULL, &r);

    free(path);
    if (rc)
        return rc;
    if (r.status >= 400) {
        http_failed(k, name, &r);
        vf_response_clear(&r);
        return VF_EXIT_ERROR;
    }
    vf_response_clear(&r);
    printf("%s \"%s\" deleted\n", k->singular, name);
    fflush(stdout);
    return VF_EXIT_OK;
}

int vf_cmd_delete(struct vf_cli *cli, int argc, char **args)
{
    struct items it = { 0 };
    const struct vf_kind_info **kinds = NULL;
    const char **names = NULL;
    size_t n = 0;
    int status = VF_EXIT_OK;
    time_t deadline = cli->timeout > 0 ? time(NULL) + cli->timeout : 0;

    if (cli->n_files > 0) {
        if (argc > 0) {
            fprintf(stderr, "error: delete takes either -f FILE or KIND NAME..., not both\n");
            return VF_EXIT_USAGE;
        }
        status = load_items(cli, &it);
        if (status)
            goto out;
        kinds = calloc(it.n, sizeof *kinds);
        names = calloc(it.n, sizeof *names);
        if (!kinds || !names) {
            status = out_of_memory();
            goto out;
        }
        for (size_t i = 0; i < it.n; i++) {
            if (!it.v[i].name) {
                fprintf(stderr, "error: %sonly metadata.generateName is given: delete the created "
                        "object by its name\n", it.v[i].where);
                status = VF_EXIT_ERROR;
                continue;
            }
            kinds[n] = it.v[i].k;
            names[n++] = it.v[i].name;
        }
    } else {
        const struct vf_kind_info *k;
        if (argc < 2) {
            fprintf(stderr, "error: give KIND NAME... or -f FILE, e.g. virtfleet delete vm linux-vm\n");
            return VF_EXIT_USAGE;
        }
        status = resolve(cli, args[0], NULL, &k);
        if (status)
            return status;
        kinds = calloc((size_t)argc, sizeof *kinds);
        names = calloc((size_t)argc, sizeof *names);
        if (!kinds || !names) {
            status = out_of_memory();
            goto out;
        }
        for (int i = 1; i < argc; i++) {
            kinds[n] = k;
            names[n++] = args[i];
        }
    }
    {
        bool *deleted = calloc(n ? n : 1, sizeof *deleted);
        if (!deleted) {
            status = out_of_memory();
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            int rc = delete_one(cli, kinds[i], names[i]);
            if (rc == VF_EXIT_CONNECT) {
                free(deleted);
                status = rc;
                goto out;
            }
            if (rc)
                status = rc;
            deleted[i] = rc == VF_EXIT_OK;
        }
        for (size_t i = 0; cli->wait && i < n; i++) {
            if (!deleted[i])
                continue;
            int rc = wait_gone(cli, kinds[i], names[i], deadline);
            if (rc == VF_EXIT_CONNECT) {
                status = rc;
                break;
            }
            if (rc)
                status = rc;
        }
        free(deleted);
    }
out:
    free(kinds);
    free(names);
    items_free(&it);
    return status;
}

/* ---- modules, version ------------------------------------------------ */

int vf_cmd_modules(struct vf_cli *cli, int argc, char **args)
{
    static const char *const headers[] = { "NAME", "ENABLED", "STATE", "VERSION", "REASON" };
    static const char *const paths[] = { "name", "enabled", "state", "version", "reason" };
    struct vf_response r;
    struct json_object *items;
    struct vf_table *t;
    int status;

    (void)args;
    if (argc > 0) {
        fprintf(stderr, "error: modules takes no arguments\n");
        return VF_EXIT_USAGE;
    }
    status = fetch(cli, VF_API_PREFIX "/modules", NULL, NULL, &r);
    if (status)
        return status;
    if (cli->output == VF_OUTPUT_JSON || cli->output == VF_OUTPUT_YAML) {
        if (cli->output == VF_OUTPUT_JSON)
            vf_render_json(stdout, r.body);
        else
            vf_render_yaml(stdout, r.body);
        vf_response_clear(&r);
        return VF_EXIT_OK;
    }
    items = vf_render_lookup(r.body, "items");
    t = vf_table_new(5, headers);
    if (!t) {
        vf_response_clear(&r);
        return out_of_memory();
    }
    for (size_t i = 0; json_object_is_type(items, json_type_array) && i < json_object_array_length(items); i++) {
        struct json_object *m = json_object_array_get_idx(items, i);
        char *cells[5];
        for (int c = 0; c < 5; c++)
            cells[c] = vf_render_cell(vf_render_lookup(m, paths[c]));
        vf_table_add_row(t, (const char *const *)cells);
        for (int c = 0; c < 5; c++)
            free(cells[c]);
    }
    if (vf_table_pending(t) == 0)
        fprintf(stderr, "No modules loaded.\n");
    vf_table_flush(t, stdout);
    vf_table_free(t);
    vf_response_clear(&r);
    return VF_EXIT_OK;
}

int vf_cmd_version(struct vf_cli *cli, int argc, char **args)
{
    struct vf_response r;
    const char *version, *abi;
    int status;

    (void)args;
    if (argc > 0) {
        fprintf(stderr, "error: version takes no arguments\n");
        return VF_EXIT_USAGE;
    }
    printf("Client Version: %s\n", PACKAGE_VERSION);
    fflush(stdout);
    status = fetch(cli, "/version", NULL, NULL, &r);
    if (status)
        return status;
    version = string_at(r.body, "version");
    abi = string_at(r.body, "abi");
    printf("Server Version: %s", version ? version : "unknown");
    if (abi)
        printf(" (module ABI %s)", abi);
    putchar('\n');
    vf_response_clear(&r);
    return VF_EXIT_OK;
}

/* ---- cordon, uncordon ------------------------------------------------ */

static int set_unschedulable(struct vf_cli *cli, int argc, char **args, bool on)
{
    const char *verb = on ? "cordoned" : "uncordoned";
    const struct vf_kind_info *k;
    int status;

    if (argc < 1) {
        fprintf(stderr, "error: name the node, e.g. virtfleet %s node-1\n", on ? "cordon" : "uncordon");
        return VF_EXIT_USAGE;
    }
    status = resolve(cli, "node", NULL, &k);
    if (status)
        return status;
    for (int i = 0; i < argc; i++) {
        struct vf_response r;
        struct json_object *patch, *spec, *cur;
        bool already;
        char *path = vf_client_path(k->plural, args[i], NULL, false, NULL);
        int rc = fetch(cli, path, k, args[i], &r);

        if (rc) {
            free(path);
            if (rc == VF_EXIT_CONNECT)
                return rc;
            status = rc;
            continue;
        }
        cur = vf_render_lookup(r.body, "spec.unschedulable");
        already = (json_object_is_type(cur, json_type_boolean) && json_object_get_boolean(cur)) == on;
        vf_response_clear(&r);
        if (already) {
            printf("%s/%s already %s\n", k->singular, args[i], verb);
            free(path);
            continue;
        }
        patch = json_object_new_object();
        spec = json_object_new_object();
        json_object_object_add(spec, "unschedulable", json_object_new_boolean(on));
        json_object_object_add(patch, "spec", spec);
        rc = call(cli, "PATCH", path, MERGE_PATCH, patch, &r);
        json_object_put(patch);
        free(path);
        if (rc == VF_EXIT_CONNECT)
            return rc;
        if (rc) {
            status = rc;
            continue;
        }
        if (r.status >= 400) {
            http_failed(k, args[i], &r);
            status = VF_EXIT_ERROR;
        } else {
            printf("%s/%s %s\n", k->singular, args[i], verb);
        }
        vf_response_clear(&r);
    }
    return status;
}

int vf_cmd_cordon(struct vf_cli *cli, int argc, char **args)
{
    return set_unschedulable(cli, argc, args, true);
}

int vf_cmd_uncordon(struct vf_cli *cli, int argc, char **args)
{
    return set_unschedulable(cli, argc, args, false);
}
