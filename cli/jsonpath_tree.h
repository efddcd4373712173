/* The tree a kubectl JSONPath template is parsed into (jsonpath_parse.c
 * builds and frees it, jsonpath_eval.c walks it).  Internal to the CLI. */
#ifndef VF_CLI_JSONPATH_TREE_H
#define VF_CLI_JSONPATH_TREE_H
#include <stdbool.h>
#include <stddef.h>
#include "jsonpath.h"

enum step_kind {
    STEP_FIELD,         /* .name, ['name'] */
    STEP_WILDCARD,      /* .*, [*] */
    STEP_RECURSIVE,     /* .. : the node and all its descendants */
    STEP_INDEX,         /* [n], [-n] */
    STEP_SLICE,         /* [start:end:step] */
    STEP_UNION,         /* [0,2], ['a','b'] */
    STEP_FILTER,        /* [?(...)] */
};

struct step;

struct path {
    struct step *v;
    size_t n;
    bool from_root;     /* starts with $: the document even inside range */
};

enum op { OP_EXISTS, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct operand {
    bool is_path;
    struct path path;
    struct json_object *value;  /* owned; NULL is JSON null */
};

struct filter {
    struct operand left, right;
    enum op op;
};

struct step {
    enum step_kind kind;
    char *name;                         /* FIELD */
    long long index;                    /* INDEX */
    long long start, end, stride;       /* SLICE */
    bool has_start, has_end;
    struct path *members;               /* UNION, each relative */
    size_t n_members;
    struct filter *filter;              /* FILTER */
};

enum node_kind { NODE_TEXT, NODE_VALUES, NODE_RANGE };

struct node;

struct list {
    struct node *v;
    size_t n;
};

struct node {
    enum node_kind kind;
    char *text;         /* TEXT */
    size_t len;
    struct path path;   /* VALUES, RANGE */
    struct list body;   /* RANGE */
};

struct vf_jsonpath {
    struct list top;
};

#endif
