#include <config.h>
/* The index of VirtualMachines by the objects they name (see vm_refs.h).
 *
 * Two chained hash tables: VMs by name, and (kind, name) -> the VMs naming it
 * as an array sorted by VM name (binary search to insert and remove; a
 * lookup returns the array as is).  A VM's record keeps its address while it
 * lives, so the arrays hold pointers to it.  An event is applied in two
 * phases: everything that allocates first (the new record's strings, the
 * entries and the room their arrays need), then the changes that cannot
 * fail, so that running out of memory leaves the index as it was. */
#include "vm_refs.h"
#include "ctl_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct vm_rec {
    struct vf_vm_info info;        /* first: the public view is the record */
    uint64_t hash;
    struct vm_rec *next;           /* in its bucket */
};

struct ref_entry {
    char *kind, *name;
    uint64_t hash;
    struct vf_vm_info **vms;       /* sorted by name; each the first member of a vm_rec */
    size_t n, cap;
    struct ref_entry *next;        /* in its bucket */
};

struct vf_vm_refs {
    struct vm_rec **vm_buckets;
    size_t n_vm_buckets, n_vms;
    struct ref_entry **ref_buckets;
    size_t n_ref_buckets, n_refs;
};

#define MIN_BUCKETS 64

/* FNV-1a, with a separator byte between the parts. */
static uint64_t hash2(const char *a, const char *b)
{
    uint64_t h = 14695981039346656037ULL;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    for (const char *p = b; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static char *dup_or_null(const char *s, bool *failed)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *failed = true;
    return d;
}

static void info_clear(struct vf_vm_info *v)
{
    free(v->name);
    free(v->uid);
    free(v->phase);
    free(v->node);
    for (size_t i = 0; i < v->n_refs; i++) {
        free(v->refs[i].kind);
        free(v->refs[i].name);
    }
    free(v->refs);
    memset(v, 0, sizeof *v);
}

static bool has_ref(const struct vf_vm_info *v, const char *kind, const char *name)
{
    for (size_t i = 0; v && i < v->n_refs; i++)
        if (!strcmp(v->refs[i].kind, kind) && !strcmp(v->refs[i].name, name))
            return true;
    return false;
}

/* vm's fields as the index keeps them; false when out of memory. */
static bool info_read(const struct json_object *vm, struct vf_vm_info *v)
{
    const struct json_object *meta = member(vm, "metadata"), *status = member(vm, "status");
    struct json_object *refs = member(member(vm, "spec"), "blockDeviceRefs");
    size_t n = json_object_is_type(refs, json_type_array) ? json_object_array_length(refs) : 0;
    bool failed = false;
    memset(v, 0, sizeof *v);
    v->name = dup_or_null(string(meta, "name"), &failed);
    v->uid = dup_or_null(string(meta, "uid"), &failed);
    v->phase = dup_or_null(string(status, "phase"), &failed);
    v->node = dup_or_null(string(status, "node"), &failed);
    v->deleting = member(meta, "deletionTimestamp") != NULL;
    if (n && !failed && !(v->refs = calloc(n, sizeof *v->refs)))
        failed = true;
    for (size_t i = 0; i < n && !failed; i++) {
        const struct json_object *ref = json_object_array_get_idx(refs, i);
        const char *kind = string(ref, "kind"), *name = string(ref, "name");
        if (!kind || !name || has_ref(v, kind, name))
            continue;
        struct vf_vm_ref *r = &v->refs[v->n_refs];
        r->kind = dup_or_null(kind, &failed);
        r->name = dup_or_null(name, &failed);
        v->n_refs++;   /* counted also when half made: info_clear frees it */
    }
    if (failed)
        info_clear(v);
    return !failed;
}

/* ---- the tables --------------------------------------------------------------------- */

/* Doubles the buckets of a table once it holds more entries than buckets;
 * a failed growth only makes the chains longer. */
#define GROW(buckets, n_buckets, count, type)                                                 \
    do {                                                                                      \
        if ((count) < (n_buckets))                                                            \
            break;                                                                            \
        size_t nb_ = (n_buckets) * 2;                                                         \
        type **b_ = calloc(nb_, sizeof *b_);                                                  \
        if (!b_)                                                                              \
            break;                                                                            \
        for (size_t i_ = 0; i_ < (n_buckets); i_++)                                           \
            for (type *e_ = (buckets)[i_], *nx_; e_; e_ = nx_) {                              \
                nx_ = e_->next;                                                               \
                e_->next = b_[e_->hash % nb_];                                                \
                b_[e_->hash % nb_] = e_;                                                      \
            }                                                                                 \
        free(buckets);                                                                        \
        (buckets) = b_;                                                                       \
        (n_buckets) = nb_;                                                                    \
    } while (0)

static struct vm_rec *vm_find(const struct vf_vm_refs *idx, const char *name)
{
    uint64_t h = hash2(name, NULL);
    for (struct vm_rec *r = idx->vm_buckets[h % idx->n_vm_buckets]; r; r = r->next)
        if (r->hash == h && !strcmp(r->info.name, name))
            return r;
    return NULL;
}

static void vm_unlink(struct vf_vm_refs *idx, struct vm_rec *rec)
{
    for (struct vm_rec **pp = &idx->vm_buckets[rec->hash % idx->n_vm_buckets]; *pp;
         pp = &(*pp)->next)
        if (*pp == rec) {
            *pp = rec->next;
            idx->n_vms--;
            return;
        }
}

static struct ref_entry *ref_find(const struct vf_vm_refs *idx, const char *kind,
                                  const char *name)
{
    uint64_t h = hash2(kind, name);
    for (struct ref_entry *e = idx->ref_buckets[h % idx->n_ref_buckets]; e; e = e->next)
        if (e->hash == h && !strcmp(e->kind, kind) && !strcmp(e->name, name))
            return e;
    return NULL;
}

/* The entry of kind/name with room for one more VM; NULL when out of memory. */
static struct ref_entry *ref_reserve(struct vf_vm_refs *idx, const char *kind, const char *name)
{
    struct ref_entry *e = ref_find(idx, kind, name);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)) || !(e->kind = strdup(kind)) ||
            !(e->name = strdup(name))) {
            if (e)
                free(e->kind);
            free(e);
            return NULL;
        }
        e->hash = hash2(kind, name);
        GROW(idx->ref_buckets, idx->n_ref_buckets, idx->n_refs, struct ref_entry);
        e->next = idx->ref_buckets[e->hash % idx->n_ref_buckets];
        idx->ref_buckets[e->hash % idx->n_ref_buckets] = e;
        idx->n_refs++;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4;
        struct vf_vm_info **vms = realloc(e->vms, cap * sizeof *vms);
        if (!vms)
            return NULL;
        e->vms = vms;
        e->cap = cap;
    }
    return e;
}

static void ref_entry_free(struct ref_entry *e)
{
    free(e->kind);
    free(e->name);
    free(e->vms);
    free(e);
}

/* Where VM `name` is, or would be inserted, in e->vms. */
static size_t ref_pos(const struct ref_entry *e, const char *name, bool *found)
{
    size_t lo = 0, hi = e->n;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->vms[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds rec to the entry of kind/name, which ref_reserve made room in. */
static void ref_add(struct vf_vm_refs *idx, const char *kind, const char *name,
                    struct vm_rec *rec)
{
    struct ref_entry *e = ref_find(idx, kind, name);
    bool found;
    size_t at = ref_pos(e, rec->info.name, &found);
    if (found)
        return;
    memmove(&e->vms[at + 1], &e->vms[at], (e->n - at) * sizeof *e->vms);
    e->vms[at] = &rec->info;
    e->n++;
}

/* Takes rec out of the entry of kind/name; an entry left empty goes. */
static void ref_remove(struct vf_vm_refs *idx, const char *kind, const char *name,
                       struct vm_rec *rec)
{
    struct ref_entry *e = ref_find(idx, kind, name);
    bool found;
    if (!e)
        return;
    size_t at = ref_pos(e, rec->info.name, &found);
    if (found) {
        memmove(&e->vms[at], &e->vms[at + 1], (e->n - at - 1) * sizeof *e->vms);
        e->n--;
    }
    if (e->n)
        return;
    for (struct ref_entry **pp = &idx->ref_buckets[e->hash % idx->n_ref_buckets]; *pp;
         pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            idx->n_refs--;
            break;
        }
    ref_entry_free(e);
}

/* ---- the index -------------------------------------------------------------------- */

struct vf_vm_refs *vf_vm_refs_new(void)
{
    struct vf_vm_refs *idx = calloc(1, sizeof *idx);
    if (!idx)
        return NULL;
    idx->n_vm_buckets = idx->n_ref_buckets = MIN_BUCKETS;
    idx->vm_buckets = calloc(MIN_BUCKETS, sizeof *idx->vm_buckets);
    idx->ref_buckets = calloc(MIN_BUCKETS, sizeof *idx->ref_buckets);
    if (!idx->vm_buckets || !idx->ref_buckets) {
        vf_vm_refs_free(idx);
        return NULL;
    }
    return idx;
}

void vf_vm_refs_free(struct vf_vm_refs *idx)
{
    if (!idx)
        return;
    for (size_t i = 0; idx->vm_buckets && i < idx->n_vm_buckets; i++)
        for (struct vm_rec *r = idx->vm_buckets[i], *next; r; r = next) {
            next = r->next;
            info_clear(&r->info);
            free(r);
        }
    for (size_t i = 0; idx->ref_buckets && i < idx->n_ref_buckets; i++)
        for (struct ref_entry *e = idx->ref_buckets[i], *next; e; e = next) {
            next = e->next;
            ref_entry_free(e);
        }
    free(idx->vm_buckets);
    free(idx->ref_buckets);
    free(idx);
}

/* touched for every ref of `now` and every ref of `was` that `now` lacks. */
static void notify(const struct vf_vm_info *was, const struct vf_vm_info *now,
                   vf_vm_refs_touched_fn touched, void *opaque)
{
    if (!touched)
        return;
    for (size_t i = 0; now && i < now->n_refs; i++)
        touched(opaque, now->refs[i].kind, now->refs[i].name);
    for (size_t i = 0; was && i < was->n_refs; i++)
        if (!has_ref(now, was->refs[i].kind, was->refs[i].name))
            touched(opaque, was->refs[i].kind, was->refs[i].name);
}

static int apply_deleted(struct vf_vm_refs *idx, const struct json_object *vm,
                         vf_vm_refs_touched_fn touched, void *opaque)
{
    const struct json_object *meta = member(vm, "metadata");
    const char *uid = string(meta, "uid");
    struct vm_rec *rec = vm_find(idx, string(meta, "name"));
    /* The VM kept is a newer one of that name: this event is not about it. */
    if (!rec || (uid && rec->info.uid && strcmp(uid, rec->info.uid)))
        return 0;
    for (size_t i = 0; i < rec->info.n_refs; i++)
        ref_remove(idx, rec->info.refs[i].kind, rec->info.refs[i].name, rec);
    vm_unlink(idx, rec);
    notify(&rec->info, NULL, touched, opaque);
    info_clear(&rec->info);
    free(rec);
    return 0;
}

int vf_vm_refs_apply(struct vf_vm_refs *idx, enum vf_watch_event type,
                     const struct json_object *vm, vf_vm_refs_touched_fn touched, void *opaque)
{
    if (!string(member(vm, "metadata"), "name"))
        return 0;
    if (type == VF_WATCH_DELETED)
        return apply_deleted(idx, vm, touched, opaque);
    /* Phase 1: what may fail. */
    struct vf_vm_info now;
    if (!info_read(vm, &now))
        return -ENOMEM;
    struct vm_rec *rec = vm_find(idx, now.name), *made = NULL;
    if (!rec && !(rec = made = calloc(1, sizeof *rec))) {
        info_clear(&now);
        return -ENOMEM;
    }
    for (size_t i = 0; i < now.n_refs; i++)
        if (!ref_reserve(idx, now.refs[i].kind, now.refs[i].name)) {
            /* Entries made empty here hold no VM: lookups find none in them. */
            info_clear(&now);
            free(made);
            return -ENOMEM;
        }
    /* Phase 2: what cannot fail.  The record keeps its name (the same). */
    struct vf_vm_info was = rec->info;
    for (size_t i = 0; i < was.n_refs; i++)
        if (!has_ref(&now, was.refs[i].kind, was.refs[i].name))
            ref_remove(idx, was.refs[i].kind, was.refs[i].name, rec);
    rec->info = now;
    if (made) {
        rec->hash = hash2(now.name, NULL);
        GROW(idx->vm_buckets, idx->n_vm_buckets, idx->n_vms, struct vm_rec);
        rec->next = idx->vm_buckets[rec->hash % idx->n_vm_buckets];
        idx->vm_buckets[rec->hash % idx->n_vm_buckets] = rec;
        idx->n_vms++;
    }
    for (size_t i = 0; i < now.n_refs; i++)
        if (!has_ref(&was, now.refs[i].kind, now.refs[i].name))
            ref_add(idx, now.refs[i].kind, now.refs[i].name, rec);
    notify(made ? NULL : &was, &rec->info, touched, opaque);
    info_clear(&was);
    return 0;
}

const struct vf_vm_info *const *vf_vm_refs_users(const struct vf_vm_refs *idx, const char *kind,
                                                 const char *name, size_t *n)
{
    const struct ref_entry *e = idx && kind && name ? ref_find(idx, kind, name) : NULL;
    *n = e ? e->n : 0;
    return e && e->n ? (const struct vf_vm_info *const *)e->vms : NULL;
}

const struct vf_vm_info *vf_vm_refs_vm(const struct vf_vm_refs *idx, const char *name)
{
    const struct vm_rec *r = idx && name ? vm_find(idx, name) : NULL;
    return r ? &r->info : NULL;
}

size_t vf_vm_refs_count(const struct vf_vm_refs *idx)
{
    return idx ? idx->n_vms : 0;
}
