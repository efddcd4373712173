/* The module loader and lifecycle: load (libltdl, resident, from the module
 * directory only) -> configure -> start -> reconfigure -> stop.  A module that
 * fails is disabled with its reason; the daemon lives on. */
#ifndef VF_MODULES_H
#define VF_MODULES_H
#include "config.h"

enum vf_module_state { VF_MODULE_DISABLED, VF_MODULE_RUNNING, VF_MODULE_FAILED };

int vf_modules_init(const char *module_dir);
/* Where modules get their state directories ($state_dir/modules/NAME). */
void vf_modules_set_state_root(const char *state_dir);  /* NULL: $VIRTFLEET_MODULE_DIR or the built-in dir */
const char *vf_modules_dir(void);
/* Check every module entry of cfg: the module exists, its ABI fits, its settings
 * pass the schema and its configure().  No side effects.  -EINVAL with errors. */
int vf_modules_check(const struct vf_config *cfg, struct vf_config_errors *errors);
/* Make the running set match cfg (start, reconfigure, restart, stop).  cfg must
 * have passed vf_modules_check.  Failures disable that module only. */
void vf_modules_apply(const struct vf_config *cfg);
void vf_modules_stop_all(void);
/* Every module in the directory and every configured one, for the API:
 * [{name, enabled, state, reason, version, settingsVersion, summary, file}] */
struct json_object *vf_modules_status(void);
/* `virtfleetd --list-modules`: each module with its settings and defaults. */
int vf_modules_print(FILE *out);
/* The table of core services handed to modules (core_services.c). */
const struct vf_core *vf_core_services(void);
#endif
