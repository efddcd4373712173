/* The kinds the core owns: Node, VirtualMachineClass, VirtualMachine,
 * VirtualMachineOperation (field names, enums and defaults from the seeds). */
#ifndef VF_CORE_KINDS_H
#define VF_CORE_KINDS_H
int vf_core_kinds_register(void);
#endif
