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

/* The host's <cpu>...</cpu> element of a capabilities document (the node's
 * answer to virConnectGetCapabilities), as a new string (free()).  0; -ENOENT
 * when there is none; -EINVAL when malformed; -ERANGE when absurdly long. */
int vf_classes_caps_host_cpu(const char *caps, char **cpu_xml);
/* The baseline of n host <cpu> elements on a connection (a virConnectPtr):
 * virConnectBaselineHypervisorCPU, or virConnectBaselineCPU where the driver
 * lacks it (libvirt's test driver), features expanded.  Blocks: worker
 * threads only.  *xml: a new string (free()); on failure *why says why. */
int vf_classes_baseline(void *conn, const char **cpus, unsigned n, char **xml, char *why,
                        size_t why_len);
/* For tests: the host <cpu> to assume for `node` when its capabilities name
 * no CPU model (libvirt's test driver never does); cpu_xml NULL forgets it,
 * node NULL forgets all.  Without one such a node keeps a Discovery class
 * Pending.  Loop thread; vf_classes_stop() forgets all. */
void vf_classes_set_test_host_cpu(const char *node, const char *cpu_xml);
#endif
