/* The kinds the core owns and their schemas.  Field names, enums and defaults
 * follow the seeds (Deckhouse Virtualization Platform v1alpha2) so that their
 * manifests apply unchanged.  Controllers for these kinds live elsewhere; this
 * file only says what a valid object looks like. */
#include <config.h>
#include "core_kinds.h"
#include "json_util.h"
#include "kinds.h"
#include "quantity.h"

#include <errno.h>
#include <string.h>

#define END {.name = NULL}

/* ---- shared pieces ---- */

static const char *const selector_operators[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};

static const struct vf_field string_item[] = {{.name = "", .type = VF_FIELD_STRING}, END};

static const struct vf_field match_expression_fields[] = {
    {.name = "key", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED},
    {.name = "operator", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED,
     .enum_values = selector_operators},
    {.name = "values", .type = VF_FIELD_ARRAY, .children = string_item},
    END,
};
static const struct vf_field match_expression_item[] = {
    {.name = "", .type = VF_FIELD_OBJECT, .children = match_expression_fields}, END};

/* A Kubernetes label selector: matchLabels and matchExpressions. */
static const struct vf_field label_selector_fields[] = {
    {.name = "matchLabels", .type = VF_FIELD_MAP},
    {.name = "matchExpressions", .type = VF_FIELD_ARRAY, .children = match_expression_item},
    END,
};

/* ---- Node ---- */

static const struct vf_field node_spec[] = {
    {.name = "unschedulable", .type = VF_FIELD_BOOL},
    END,
};
static const char *const node_columns[] = {
    "PHASE", "status.phase", "SCHEDULABLE", "status.schedulable", "CPUS", "status.capacity.cpu",
    "MEMORY", "status.capacity.memory", NULL};
static const struct vf_kind node_kind = {
    .kind = "Node", .plural = "nodes", .singular = "node", .short_name = "no",
    .spec = node_spec, .columns = node_columns,
};

/* ---- VirtualMachineClass ---- */

static const char *const cpu_types[] = {"Host", "HostPassthrough", "Discovery", "Model",
                                        "Features", NULL};
static const struct vf_field discovery_fields[] = {
    {.name = "nodeSelector", .type = VF_FIELD_OBJECT, .children = label_selector_fields},
    END,
};
static const struct vf_field class_cpu_fields[] = {
    {.name = "type", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED, .enum_values = cpu_types},
    {.name = "model", .type = VF_FIELD_STRING},
    {.name = "features", .type = VF_FIELD_ARRAY, .children = string_item},
    {.name = "discovery", .type = VF_FIELD_OBJECT, .children = discovery_fields},
    END,
};
static const struct vf_field range_int_fields[] = {
    {.name = "min", .type = VF_FIELD_INT, .flags = VF_FIELD_REQUIRED, .min = 1, .max = 1024},
    {.name = "max", .type = VF_FIELD_INT, .flags = VF_FIELD_REQUIRED, .min = 1, .max = 1024},
    END,
};
static const struct vf_field per_core_fields[] = {
    {.name = "min", .type = VF_FIELD_QUANTITY},
    {.name = "max", .type = VF_FIELD_QUANTITY},
    END,
};
static const struct vf_field sizing_memory_fields[] = {
    {.name = "min", .type = VF_FIELD_QUANTITY},
    {.name = "max", .type = VF_FIELD_QUANTITY},
    {.name = "step", .type = VF_FIELD_QUANTITY},
    {.name = "perCore", .type = VF_FIELD_OBJECT, .children = per_core_fields},
    END,
};
static const struct vf_field fraction_item[] = {
    {.name = "", .type = VF_FIELD_INT, .min = 1, .max = 100}, END};
static const struct vf_field sizing_policy_fields[] = {
    {.name = "cores", .type = VF_FIELD_OBJECT, .flags = VF_FIELD_REQUIRED,
     .children = range_int_fields},
    {.name = "memory", .type = VF_FIELD_OBJECT, .children = sizing_memory_fields},
    {.name = "coreFractions", .type = VF_FIELD_ARRAY, .children = fraction_item},
    {.name = "dedicatedCores", .type = VF_FIELD_ARRAY},
    END,
};
static const struct vf_field sizing_policy_item[] = {
    {.name = "", .type = VF_FIELD_OBJECT, .children = sizing_policy_fields}, END};
static const struct vf_field class_spec[] = {
    {.name = "cpu", .type = VF_FIELD_OBJECT, .flags = VF_FIELD_REQUIRED | VF_FIELD_IMMUTABLE,
     .children = class_cpu_fields},
    {.name = "nodeSelector", .type = VF_FIELD_OBJECT, .children = label_selector_fields},
    {.name = "tolerations", .type = VF_FIELD_ARRAY},
    {.name = "sizingPolicies", .type = VF_FIELD_ARRAY, .children = sizing_policy_item, .max = 64},
    END,
};

/* Quantity at o.key, or -1 when absent (the schema already checked the syntax). */
static int64_t get_quantity(const struct json_object *o, const char *key)
{
    struct json_object *v;
    int64_t bytes;
    if (!json_object_object_get_ex(o, key, &v))
        return -1;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return vf_quantity_parse(json_object_get_string(v), &bytes) == 0 ? bytes : -1;
}

static int check_memory_range(const struct json_object *mem, const char *path, struct vf_error *err)
{
    int64_t min = get_quantity(mem, "min"), max = get_quantity(mem, "max");
    if (min >= 0 && max >= 0 && min > max)
        return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                            "%s: min is larger than max", path);
    return 0;
}

/* The seeds' rules for sizing policies: core ranges strictly sequential and
 * non-overlapping (each starts right after the previous max), and each range
 * says something about memory or coreFractions. */
static int validate_sizing_policies(const struct json_object *policies, struct vf_error *err)
{
    size_t n = json_object_array_length(policies);
    int64_t prev_max = 0;
    char path[96];
    for (size_t i = 0; i < n; i++) {
        const struct json_object *p = json_object_array_get_idx(policies, i);
        struct json_object *cores, *mem = NULL, *fractions = NULL;
        json_object_object_get_ex(p, "cores", &cores);
        int64_t min = vf_json_int(cores, "min", 0), max = vf_json_int(cores, "max", 0);
        snprintf(path, sizeof path, "spec.sizingPolicies[%zu].cores", i);
        if (min > max)
            return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                                "%s: min %lld is larger than max %lld", path, (long long)min,
                                (long long)max);
        if (i > 0 && min <= prev_max)
            return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                                "%s: range [%lld; %lld] overlaps the previous range, which ends at "
                                "%lld; it must start at %lld", path, (long long)min, (long long)max,
                                (long long)prev_max, (long long)prev_max + 1);
        if (i > 0 && min != prev_max + 1)
            return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                                "%s: range [%lld; %lld] leaves a gap after the previous range, "
                                "which ends at %lld; it must start at %lld", path, (long long)min,
                                (long long)max, (long long)prev_max, (long long)prev_max + 1);
        prev_max = max;

        json_object_object_get_ex(p, "memory", &mem);
        json_object_object_get_ex(p, "coreFractions", &fractions);
        snprintf(path, sizeof path, "spec.sizingPolicies[%zu]", i);
        if (!mem && !fractions)
            return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                                "%s: give memory (or memory.perCore), coreFractions, or both", path);
        if (mem) {
            struct json_object *per_core = NULL;
            json_object_object_get_ex(mem, "perCore", &per_core);
            bool has_total = get_quantity(mem, "min") >= 0 || get_quantity(mem, "max") >= 0;
            snprintf(path, sizeof path, "spec.sizingPolicies[%zu].memory", i);
            if (per_core && has_total)
                return vf_error_set(err, -EINVAL, 400, "Invalid", path,
                                    "%s: give either min/max for all cores or perCore, not both",
                                    path);
            int rc = check_memory_range(per_core ? per_core : mem, path, err);
            if (rc < 0)
                return rc;
            if (get_quantity(mem, "step") == 0)
                return vf_error_set(err, -EINVAL, 400, "Invalid", path, "%s.step: must be > 0",
                                    path);
        }
    }
    return 0;
}

static int validate_class(struct vf_module_ctx *ctx, const struct json_object *old,
                          struct json_object *obj, struct vf_error *err)
{
    struct json_object *spec, *cpu, *type, *policies;
    if (!json_object_object_get_ex(obj, "spec", &spec) ||
        !json_object_object_get_ex(spec, "cpu", &cpu) ||
        !json_object_object_get_ex(cpu, "type", &type))
        return 0; /* the schema reported it */
    const char *t = json_object_get_string(type);
    struct json_object *model = NULL, *features = NULL;
    json_object_object_get_ex(cpu, "model", &model);
    json_object_object_get_ex(cpu, "features", &features);
    if (strcmp(t, "Model") == 0 && (!model || !*json_object_get_string(model)))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.model",
                            "spec.cpu.model: required when spec.cpu.type is Model (e.g. IvyBridge)");
    if (strcmp(t, "Features") == 0 && (!features || json_object_array_length(features) == 0))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.features",
                            "spec.cpu.features: required when spec.cpu.type is Features "
                            "(e.g. [vmx])");
    if (model && strcmp(t, "Model") != 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.model",
                            "spec.cpu.model: only allowed when spec.cpu.type is Model");
    if (json_object_object_get_ex(spec, "sizingPolicies", &policies))
        return validate_sizing_policies(policies, err);
    return 0;
}

static const char *const class_columns[] = {"PHASE", "status.phase", NULL};
static const struct vf_kind class_kind = {
    .kind = "VirtualMachineClass", .plural = "virtualmachineclasses",
    .singular = "virtualmachineclass", .short_name = "vmclass",
    .spec = class_spec, .validate = validate_class, .columns = class_columns,
};

/* ---- VirtualMachine ---- */

static const char *const run_policies[] = {"AlwaysOn", "AlwaysOff", "Manual",
                                           "AlwaysOnUnlessStoppedManually", NULL};
static const char *const bootloaders[] = {"BIOS", "EFI", "EFIWithSecureBoot", NULL};
static const char *const os_types[] = {"Windows", "Generic", NULL};
static const char *const block_device_kinds[] = {"VirtualDisk", "VirtualImage",
                                                 "ClusterVirtualImage", NULL};
static const char *const restart_modes[] = {"Automatic", "Manual", NULL};

static const struct vf_field vm_cpu_fields[] = {
    {.name = "cores", .type = VF_FIELD_INT, .flags = VF_FIELD_REQUIRED, .min = 1, .max = 1024},
    {.name = "coreFraction", .type = VF_FIELD_PERCENT},
    END,
};
static const struct vf_field vm_memory_fields[] = {
    {.name = "size", .type = VF_FIELD_QUANTITY, .flags = VF_FIELD_REQUIRED},
    END,
};
static const struct vf_field block_device_fields[] = {
    {.name = "kind", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED,
     .enum_values = block_device_kinds},
    {.name = "name", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED | VF_FIELD_DNS_LABEL},
    END,
};
static const struct vf_field block_device_item[] = {
    {.name = "", .type = VF_FIELD_OBJECT, .children = block_device_fields}, END};
static const struct vf_field disruptions_fields[] = {
    {.name = "restartApprovalMode", .type = VF_FIELD_STRING, .enum_values = restart_modes},
    END,
};
/* A direct kernel boot: lets tests run disk-less guests. */
static const struct vf_field kernel_fields[] = {
    {.name = "path", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED},
    {.name = "cmdline", .type = VF_FIELD_STRING},
    END,
};
static const struct vf_field vm_spec[] = {
    {.name = "virtualMachineClassName", .type = VF_FIELD_STRING, .flags = VF_FIELD_DNS_LABEL},
    {.name = "runPolicy", .type = VF_FIELD_STRING, .enum_values = run_policies},
    {.name = "cpu", .type = VF_FIELD_OBJECT, .children = vm_cpu_fields},
    {.name = "memory", .type = VF_FIELD_OBJECT, .children = vm_memory_fields},
    {.name = "blockDeviceRefs", .type = VF_FIELD_ARRAY, .children = block_device_item, .max = 16},
    {.name = "bootloader", .type = VF_FIELD_STRING, .enum_values = bootloaders},
    {.name = "kernel", .type = VF_FIELD_OBJECT, .children = kernel_fields},
    {.name = "osType", .type = VF_FIELD_STRING, .enum_values = os_types},
    {.name = "nodeSelector", .type = VF_FIELD_MAP},
    {.name = "affinity", .type = VF_FIELD_ANY},
    {.name = "tolerations", .type = VF_FIELD_ARRAY},
    {.name = "virtualMachineIPAddressName", .type = VF_FIELD_STRING},
    {.name = "ipAddress", .type = VF_FIELD_STRING},
    {.name = "disruptions", .type = VF_FIELD_OBJECT, .children = disruptions_fields},
    {.name = "enableParavirtualization", .type = VF_FIELD_BOOL},
    {.name = "terminationGracePeriodSeconds", .type = VF_FIELD_INT, .min = 0, .max = 86400},
    {.name = "provisioning", .type = VF_FIELD_ANY},
    {.name = "priorityClassName", .type = VF_FIELD_STRING},
    END,
};

/* Defaults from the seeds: the generic class, runPolicy
 * AlwaysOnUnlessStoppedManually, coreFraction 100%. */
static int validate_vm(struct vf_module_ctx *ctx, const struct json_object *old,
                       struct json_object *obj, struct vf_error *err)
{
    struct json_object *spec, *v;
    if (!json_object_object_get_ex(obj, "spec", &spec))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec", "spec: required");
    if (!json_object_object_get_ex(spec, "virtualMachineClassName", &v))
        json_object_object_add(spec, "virtualMachineClassName", json_object_new_string("generic"));
    if (!json_object_object_get_ex(spec, "runPolicy", &v))
        json_object_object_add(spec, "runPolicy",
                               json_object_new_string("AlwaysOnUnlessStoppedManually"));
    struct json_object *cpu;
    if (json_object_object_get_ex(spec, "cpu", &cpu) &&
        !json_object_object_get_ex(cpu, "coreFraction", &v))
        json_object_object_add(cpu, "coreFraction", json_object_new_string("100%"));
    return 0;
}

static const char *const vm_columns[] = {"PHASE", "status.phase", "NODE", "status.node",
                                         "IPADDRESS", "status.ipAddress", NULL};
static const struct vf_kind vm_kind = {
    .kind = "VirtualMachine", .plural = "virtualmachines", .singular = "virtualmachine",
    .short_name = "vm", .spec = vm_spec, .validate = validate_vm, .columns = vm_columns,
};

/* ---- VirtualMachineOperation ---- */

static const char *const vmop_types[] = {"Start", "Stop", "Restart", "Migrate", "Evict", NULL};
static const struct vf_field migrate_fields[] = {
    {.name = "nodeName", .type = VF_FIELD_STRING, .flags = VF_FIELD_DNS_LABEL},
    {.name = "nodeSelector", .type = VF_FIELD_MAP},
    END,
};
/* An operation is a request: once made it never changes. */
static const struct vf_field vmop_spec[] = {
    {.name = "virtualMachineName", .type = VF_FIELD_STRING,
     .flags = VF_FIELD_REQUIRED | VF_FIELD_IMMUTABLE | VF_FIELD_DNS_LABEL},
    {.name = "type", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED | VF_FIELD_IMMUTABLE,
     .enum_values = vmop_types},
    {.name = "force", .type = VF_FIELD_BOOL, .flags = VF_FIELD_IMMUTABLE},
    {.name = "migrate", .type = VF_FIELD_OBJECT, .flags = VF_FIELD_IMMUTABLE,
     .children = migrate_fields},
    END,
};

static int validate_vmop(struct vf_module_ctx *ctx, const struct json_object *old,
                         struct json_object *obj, struct vf_error *err)
{
    struct json_object *spec, *type, *migrate;
    if (!json_object_object_get_ex(obj, "spec", &spec) ||
        !json_object_object_get_ex(spec, "type", &type))
        return 0;
    if (json_object_object_get_ex(spec, "migrate", &migrate) &&
        strcmp(json_object_get_string(type), "Migrate") != 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.migrate",
                            "spec.migrate: only allowed when spec.type is Migrate");
    return 0;
}

static const char *const vmop_columns[] = {"PHASE", "status.phase", "TYPE", "spec.type",
                                           "VIRTUALMACHINE", "spec.virtualMachineName", NULL};
static const struct vf_kind vmop_kind = {
    .kind = "VirtualMachineOperation", .plural = "virtualmachineoperations",
    .singular = "virtualmachineoperation", .short_name = "vmop",
    .spec = vmop_spec, .validate = validate_vmop, .columns = vmop_columns,
};

int vf_core_kinds_register(void)
{
    static const struct vf_kind *const kinds[] = {&node_kind, &class_kind, &vm_kind, &vmop_kind};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (vf_kinds_lookup(kinds[i]->kind))
            continue;   /* registered by an earlier start in this process (tests) */
        struct vf_error err = {0};
        int rc = vf_kinds_register(kinds[i], NULL, &err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
