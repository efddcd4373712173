/* The VirtualMachine controller and the core's VirtualMachineOperations (Start,
 * Stop, Restart).  Level-triggered: it reads the store and libvirt and
 * converges, so a restart at any point loses nothing and never starts a VM
 * twice.  Places VMs (placement.h), issues addresses (ipam.h), defines and
 * starts domains (domain_xml.h) on nodes, follows libvirt's domain lifecycle
 * events, and applies runPolicy.  Loop thread only. */
#ifndef VF_VMS_H
#define VF_VMS_H
#include "config.h"

int vf_vms_start(const struct vf_config *cfg);
/* Reload: new virtualMachineCIDRs (and libvirtNetwork, which only VMs
 * started afterwards use).  -EBUSY (errors collected) when a removed
 * subnet still has issued addresses: the reload must then be refused. */
int vf_vms_check_config(const struct vf_config *cfg, struct vf_config_errors *errors);
void vf_vms_apply_config(const struct vf_config *cfg);
void vf_vms_stop(void);
#endif
