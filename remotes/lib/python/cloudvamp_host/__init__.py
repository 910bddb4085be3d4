"""Host-side code of cloudvamp: IM probes and VMM actions run by OpenNebula on each KVM host.

OpenNebula copies ``/var/lib/one/remotes`` to every host (``/var/tmp/one``) and runs the
probes and actions there. Hosts only have the Python standard library and libvirt-python,
so nothing here may import ``cvem``; the attribute names we share with cvem are copied in
:mod:`cloudvamp_host.keys` and a test keeps them equal to ``cvem.keys``.

Modules:
    keys         attribute names reported to OpenNebula (copy of cvem.keys)
    settings     LIBVIRT_URI and timeouts from the environment, cloudvamprc and kvmrc
    bounded      libvirt calls with a deadline, so a hung libvirtd cannot hang OpenNebula
    template     OpenNebula template text (quoting, vector attributes, MONITOR base64)
    driver_io    stderr conventions of one_vmm_exec (INFO:/ERROR: lines, one-line failure)
    action_xml   reading the VMM_DRIVER_ACTION_DATA document an action gets on stdin
    balloon      set the balloon and wait until the guest has really given/taken the memory
    vm_monitor   the vm/monitor probe      host_system  the host/system probe
    resize       the resize action         migrate      the migrate action
"""
