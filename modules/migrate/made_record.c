/* The durable list of the volumes a block migration made on its target
 * (pure POSIX, also linked into tests/unit/check_migrate).
 *
 * Before a block migration the migration thread finds which of the disks'
 * files the target lacks: libvirt pre-creates them there, and when the
 * migration fails they are a copy nobody uses.  That list must outlive the
 * daemon (a kill -9 during the copy, a migration that then fails), so it is
 * written before the copy begins to <state_dir>/block-migrations/<migration
 * UID>, one record per migration: two migrations of one VM never share a
 * record, and a leftover one is settled by that migration's outcome alone.
 * The write goes to a temporary name, is fsynced and renamed, and the
 * directory fsynced, so a kill at any point leaves either no record or a
 * whole one.  Format, one item a line ("key value"):
 *     vm <name>
 *     uid <the VM's uid (= the domain's UUID)>
 *     target <node>
 *     path <file>       (one line per volume)
 * made_volumes.c decides what becomes of a leftover record. */
#include <config.h>
#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_SUFFIX ".tmp"

/* A record's file name: the migration UID, which must be a plain name. */
static bool name_ok(const char *name)
{
    return name && *name && name[0] != '.' && !strchr(name, '/') &&
           strlen(name) < MIG_RECORD_NAME_MAX;
}

static bool line_ok(const char *s)
{
    return s && *s && !strchr(s, '\n');
}

static int fail(char *err, size_t len, int rc, const char *what, const char *path)
{
    snprintf(err, len, "%s \"%s\": %s", what, path, strerror(-rc));
    return rc;
}

/* Make the rename or unlink of an entry of `dir` durable. */
static int dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int mig_record_write(const char *dir, const char *name, const struct mig_record *rec, char *err,
                     size_t len)
{
    char path[MIG_PATH_MAX + MIG_RECORD_NAME_MAX + 8], tmp[sizeof path + 8];
    if (!name_ok(name) || !line_ok(rec->vm) || !line_ok(rec->vm_uid) || !line_ok(rec->target))
        return fail(err, len, -EINVAL, "a record of the volumes made on the target, named", name ? name : "");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s" TMP_SUFFIX, dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return fail(err, len, -errno, "cannot create", tmp);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int rc = -errno;
        close(fd);
        unlink(tmp);
        return fail(err, len, rc, "cannot write", tmp);
    }
    fprintf(f, "vm %s\nuid %s\ntarget %s\n", rec->vm, rec->vm_uid, rec->target);
    for (size_t i = 0; i < rec->n; i++)
        if (line_ok(rec->paths[i]))   /* a file name with a newline is left out: never deleted */
            fprintf(f, "path %s\n", rec->paths[i]);
    int rc = 0;
    if (fflush(f) != 0 || fsync(fd) < 0)
        rc = -errno;
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return fail(err, len, rc, "cannot write", tmp);
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        unlink(tmp);
        return fail(err, len, rc, "cannot rename it to", path);
    }
    if ((rc = dir_sync(dir)) < 0)
        return fail(err, len, rc, "cannot sync the directory", dir);
    return 0;
}

int mig_record_read(const char *dir, const char *name, struct mig_record *rec, char *err,
                    size_t len)
{
    char path[MIG_PATH_MAX + MIG_RECORD_NAME_MAX + 8], line[MIG_PATH_MAX + 16];
    memset(rec, 0, sizeof *rec);
    if (!name_ok(name))
        return fail(err, len, -EINVAL, "not a record name:", name ? name : "");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return fail(err, len, -errno, "cannot read", path);
    bool whole = true;
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        if (l == 0 || line[l - 1] != '\n') {
            whole = false;   /* too long, or no newline at the end: not ours */
            break;
        }
        line[l - 1] = '\0';
        const char *v = strchr(line, ' ');
        if (!v)
            continue;
        v++;
        size_t k = (size_t)(v - 1 - line);
        if (k == 2 && !strncmp(line, "vm", k))
            snprintf(rec->vm, sizeof rec->vm, "%s", v);
        else if (k == 3 && !strncmp(line, "uid", k))
            snprintf(rec->vm_uid, sizeof rec->vm_uid, "%s", v);
        else if (k == 6 && !strncmp(line, "target", k))
            snprintf(rec->target, sizeof rec->target, "%s", v);
        else if (k == 4 && !strncmp(line, "path", k) && rec->n < MIG_MAX_DISKS && *v)
            snprintf(rec->paths[rec->n++], MIG_PATH_MAX, "%s", v);
        /* Other keys: a later version's; ignored. */
    }
    fclose(f);
    if (!whole || !rec->vm_uid[0] || !rec->target[0])
        return fail(err, len, -EINVAL, "a malformed record", path);
    return 0;
}

int mig_record_remove(const char *dir, const char *name, char *err, size_t len)
{
    char path[MIG_PATH_MAX + MIG_RECORD_NAME_MAX + 8];
    if (!name_ok(name))
        return fail(err, len, -EINVAL, "not a record name:", name ? name : "");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) < 0) {
        if (errno == ENOENT)
            return 0;
        return fail(err, len, -errno, "cannot remove", path);
    }
    int rc = dir_sync(dir);
    return rc < 0 ? fail(err, len, rc, "cannot sync the directory", dir) : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mig_record_list(const char *dir, bool drop_temporary, char ***names_out, size_t *n_out)
{
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            /* A write a kill interrupted before its rename: nothing was made yet. */
            size_t l = strlen(e->d_name), s = strlen(TMP_SUFFIX);
            if (drop_temporary && l > s + 1 && !strcmp(e->d_name + l - s, TMP_SUFFIX))
                unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        if (!name_ok(e->d_name))
            continue;
        if (n == cap) {
            char **more = realloc(names, (cap ? cap * 2 : 8) * sizeof *names);
            if (!more) {
                rc = -ENOMEM;
                break;
            }
            names = more;
            cap = cap ? cap * 2 : 8;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc < 0) {
        mig_record_names_free(names, n);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof *names, by_name);
    *names_out = names;
    *n_out = n;
    return 0;
}

void mig_record_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
