/* The VirtualMachineClass controller: creates the default class `generic`
 * (CPU model Nehalem, as the seeds say), keeps each class's status (phase
 * Ready/Pending, availableNodes, for Discovery the baseline CPU of the selected
 * nodes computed with virConnectBaselineHypervisorCPU, falling back to
 * virConnectBaselineCPU, recomputed when nodes change), and reports
 * SizingPolicyMatched on VMs.  Loop thread only. */
#ifndef VF_CLASSES_H
#define VF_CLASSES_H
#include <stdbool.h>
#include <json-c/json.h>

int vf_classes_start(void);
void vf_classes_stop(void);
/* Does a VM spec fit the class's sizing policies?  *why explains a mismatch. */
bool vf_classes_sizing_matches(const struct json_object *vmclass, const struct json_object *vm_spec,
                               char *why, size_t why_len);
#endif
