"""Generate oned 7.4-shaped pool documents for scale benchmarks.

The element layout, order and CDATA use follow the documents recorded from a real oned 7.4
(``shared/opennebula-xsd/real-7.4``): a KVM VM with a disk, a NIC, a context section with a
OneGate token, ballooning memory (MEMORY < MEMORY_MAX) and the in-guest reporter's keys in
USER_TEMPLATE, and hosts with HOST_SHARE, PCI/NUMA data and monitoring. Each VM is ~4 KB,
the size of a production KVM VM's ``infoextended`` body.
"""
from __future__ import annotations

import io
import random
from typing import Tuple

MIB = 1024


def _c(value) -> str:
    return f"<![CDATA[{value}]]>"


def _vm_xml(vm_id: int, host_id: int, rng: random.Random, now_s: int) -> str:
    nominal_mib = rng.choice((2048, 4096, 4096, 8192, 8192, 16384))
    memory_mib = max(512, int(nominal_mib * rng.uniform(0.2, 1.0)) // 64 * 64)
    used_kib = int(memory_mib * MIB * rng.uniform(0.2, 0.8))
    total_kib = memory_mib * MIB - 150000
    uuid = "%08x-%04x-4%03x-8%03x-%012x" % (vm_id, rng.getrandbits(16), rng.getrandbits(12),
                                            rng.getrandbits(12), rng.getrandbits(48))
    mac = "02:00:0a:%02x:%02x:%02x" % ((vm_id >> 16) & 255, (vm_id >> 8) & 255, vm_id & 255)
    ip = "10.%d.%d.%d" % ((vm_id >> 16) & 255, (vm_id >> 8) & 255, vm_id & 255)
    stime = now_s - rng.randint(3600, 90 * 86400)
    cluster_req = _c('("CLUSTERS/ID" @> 0)')
    perms = "".join(f"<{k}>{v}</{k}>" for k, v in (
        ("OWNER_U", 1), ("OWNER_M", 1), ("OWNER_A", 0), ("GROUP_U", 0), ("GROUP_M", 0),
        ("GROUP_A", 0), ("OTHER_U", 0), ("OTHER_M", 0), ("OTHER_A", 0)))
    return (
        f"<VM><ID>{vm_id}</ID><UID>2</UID><GID>1</GID><UNAME>alice</UNAME><GNAME>users</GNAME>"
        f"<NAME>app-{vm_id:05d}</NAME><PERMISSIONS>{perms}</PERMISSIONS>"
        f"<LAST_POLL>{now_s}</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"
        f"<PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>3</PREV_LCM_STATE><RESCHED>0</RESCHED>"
        f"<STIME>{stime}</STIME><ETIME>0</ETIME><DEPLOY_ID>{uuid}</DEPLOY_ID>"
        f"<MONITORING></MONITORING><SCHED_ACTIONS></SCHED_ACTIONS><TEMPLATE>"
        f"<AUTOMATIC_DS_REQUIREMENTS>{cluster_req}</AUTOMATIC_DS_REQUIREMENTS>"
        f"<AUTOMATIC_NIC_REQUIREMENTS>{cluster_req}</AUTOMATIC_NIC_REQUIREMENTS>"
        f"<AUTOMATIC_REQUIREMENTS>{_c('(CLUSTER_ID = 0) & !(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)')}"
        f"</AUTOMATIC_REQUIREMENTS>"
        f"<CONTEXT><DISK_ID>{_c(1)}</DISK_ID><ETH0_IP>{_c(ip)}</ETH0_IP><ETH0_MAC>{_c(mac)}</ETH0_MAC>"
        f"<NETWORK>{_c('YES')}</NETWORK><ONEGATE_ENDPOINT>{_c('http://169.254.16.9:5030')}</ONEGATE_ENDPOINT>"
        f"<SSH_PUBLIC_KEY>{_c('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq0rYqvZ5xXf8w alice@ws')}</SSH_PUBLIC_KEY>"
        f"<TARGET>{_c('hda')}</TARGET><TOKEN>{_c('YES')}</TOKEN><VMID>{_c(vm_id)}</VMID></CONTEXT>"
        f"<CPU>{_c(1)}</CPU>"
        f"<DISK><ALLOW_ORPHANS>{_c('FORMAT')}</ALLOW_ORPHANS><CLONE>{_c('YES')}</CLONE>"
        f"<CLONE_TARGET>{_c('SYSTEM')}</CLONE_TARGET><CLUSTER_ID>{_c(0)}</CLUSTER_ID>"
        f"<DATASTORE>{_c('default')}</DATASTORE><DATASTORE_ID>{_c(1)}</DATASTORE_ID>"
        f"<DEV_PREFIX>{_c('vd')}</DEV_PREFIX><DISK_ID>{_c(0)}</DISK_ID><DISK_SNAPSHOT_TOTAL_SIZE>{_c(0)}"
        f"</DISK_SNAPSHOT_TOTAL_SIZE><DISK_TYPE>{_c('FILE')}</DISK_TYPE><DRIVER>{_c('qcow2')}</DRIVER>"
        f"<FORMAT>{_c('qcow2')}</FORMAT><IMAGE>{_c('debian-12')}</IMAGE><IMAGE_ID>{_c(3)}</IMAGE_ID>"
        f"<IMAGE_STATE>{_c(2)}</IMAGE_STATE><LN_TARGET>{_c('NONE')}</LN_TARGET>"
        f"<ORIGINAL_SIZE>{_c(2048)}</ORIGINAL_SIZE><READONLY>{_c('NO')}</READONLY><SAVE>{_c('NO')}</SAVE>"
        f"<SIZE>{_c(20480)}</SIZE><SOURCE>{_c('/var/lib/one//datastores/1/3f2a1b')}</SOURCE>"
        f"<TARGET>{_c('vda')}</TARGET><TM_MAD>{_c('qcow2')}</TM_MAD><TYPE>{_c('FILE')}</TYPE></DISK>"
        f"<GRAPHICS><LISTEN>{_c('0.0.0.0')}</LISTEN><PORT>{_c(5900 + vm_id % 60000)}</PORT>"
        f"<TYPE>{_c('VNC')}</TYPE></GRAPHICS>"
        f"<MEMORY>{_c(memory_mib)}</MEMORY><MEMORY_MAX>{_c(nominal_mib)}</MEMORY_MAX>"
        f"<MEMORY_RESIZE_MODE>{_c('BALLOONING')}</MEMORY_RESIZE_MODE>"
        f"<NIC><AR_ID>{_c(0)}</AR_ID><BRIDGE>{_c('br0')}</BRIDGE><BRIDGE_TYPE>{_c('linux')}</BRIDGE_TYPE>"
        f"<CLUSTER_ID>{_c(0)}</CLUSTER_ID><IP>{_c(ip)}</IP><MAC>{_c(mac)}</MAC><MODEL>{_c('virtio')}</MODEL>"
        f"<NAME>{_c('NIC0')}</NAME><NETWORK>{_c('public')}</NETWORK><NETWORK_ID>{_c(0)}</NETWORK_ID>"
        f"<NIC_ID>{_c(0)}</NIC_ID><SECURITY_GROUPS>{_c(0)}</SECURITY_GROUPS><TARGET>{_c(f'one-{vm_id}-0')}"
        f"</TARGET><VN_MAD>{_c('bridge')}</VN_MAD></NIC>"
        f"<OS><ARCH>{_c('x86_64')}</ARCH><MACHINE>{_c('q35')}</MACHINE><UUID>{_c(uuid)}</UUID></OS>"
        f"<TEMPLATE_ID>{_c(4)}</TEMPLATE_ID><TM_MAD_SYSTEM>{_c('ssh')}</TM_MAD_SYSTEM>"
        f"<VCPU>{_c(2)}</VCPU><VMID>{_c(vm_id)}</VMID></TEMPLATE>"
        f"<USER_TEMPLATE><CLOUDVAMP_MEM_AVAILABLE_KIB>{_c(total_kib - used_kib)}</CLOUDVAMP_MEM_AVAILABLE_KIB>"
        f"<CLOUDVAMP_MEM_TOTAL_KIB>{_c(total_kib)}</CLOUDVAMP_MEM_TOTAL_KIB>"
        f"<CLOUDVAMP_MEM_USED_KIB>{_c(used_kib)}</CLOUDVAMP_MEM_USED_KIB>"
        f"<CLOUDVAMP_PSI_FULL_AVG10>{_c('0.00')}</CLOUDVAMP_PSI_FULL_AVG10>"
        f"<CLOUDVAMP_PSI_SOME_AVG10>{_c('0.00')}</CLOUDVAMP_PSI_SOME_AVG10>"
        f"<CLOUDVAMP_SEQ>{_c(rng.randint(1, 10**6))}</CLOUDVAMP_SEQ>"
        f"<CLOUDVAMP_SWAP_IN_KIB_S>{_c('0.0')}</CLOUDVAMP_SWAP_IN_KIB_S>"
        f"<CLOUDVAMP_SWAP_OUT_KIB_S>{_c('0.0')}</CLOUDVAMP_SWAP_OUT_KIB_S>"
        f"<CLOUDVAMP_SWAP_USED_KIB>{_c(0)}</CLOUDVAMP_SWAP_USED_KIB>"
        f"<CLOUDVAMP_TIME>{_c(now_s - rng.randint(0, 20))}</CLOUDVAMP_TIME>"
        f"<DESCRIPTION>{_c('application server')}</DESCRIPTION><LABELS>{_c('prod,web')}</LABELS>"
        f"</USER_TEMPLATE>"
        f"<HISTORY_RECORDS><HISTORY><OID>{vm_id}</OID><SEQ>0</SEQ><HOSTNAME>node{host_id:04d}</HOSTNAME>"
        f"<HID>{host_id}</HID><CID>0</CID><STIME>{stime}</STIME><ETIME>0</ETIME>"
        f"<VM_MAD>{_c('cloudvamp')}</VM_MAD><TM_MAD>{_c('ssh')}</TM_MAD><DS_ID>0</DS_ID>"
        f"<PLAN_ID>-1</PLAN_ID><ACTION_ID>-1</ACTION_ID><PSTIME>{stime}</PSTIME><PETIME>{stime + 20}"
        f"</PETIME><RSTIME>{stime + 20}</RSTIME><RETIME>0</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME>"
        f"<ACTION>0</ACTION><UID>-1</UID><GID>-1</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>"
        f"</HISTORY_RECORDS><BACKUPS><BACKUP_CONFIG/><BACKUP_IDS></BACKUP_IDS></BACKUPS></VM>")


def _host_xml(host_id: int, vm_ids, mem_usage_kib: int, now_s: int, total_kib: int) -> str:
    ids = "".join(f"<ID>{i}</ID>" for i in vm_ids)
    free = max(total_kib - mem_usage_kib, 0)
    return (
        f"<HOST><ID>{host_id}</ID><NAME>node{host_id:04d}</NAME><STATE>2</STATE><PREV_STATE>2</PREV_STATE>"
        f"<IM_MAD>{_c('cloudvamp')}</IM_MAD><VM_MAD>{_c('cloudvamp')}</VM_MAD><CLUSTER_ID>0</CLUSTER_ID>"
        f"<CLUSTER>default</CLUSTER><HOST_SHARE><MEM_USAGE>{mem_usage_kib}</MEM_USAGE>"
        f"<CPU_USAGE>{len(vm_ids) * 100}</CPU_USAGE><TOTAL_MEM>{total_kib}</TOTAL_MEM>"
        f"<TOTAL_CPU>6400</TOTAL_CPU><MAX_MEM>{total_kib}</MAX_MEM><MAX_CPU>6400</MAX_CPU>"
        f"<RUNNING_VMS>{len(vm_ids)}</RUNNING_VMS><VMS_THREAD>{len(vm_ids)}</VMS_THREAD>"
        f"<DATASTORES><DISK_USAGE>{_c(0)}</DISK_USAGE><FREE_DISK>{_c(812000)}</FREE_DISK>"
        f"<MAX_DISK>{_c(953000)}</MAX_DISK><USED_DISK>{_c(141000)}</USED_DISK></DATASTORES>"
        f"<PCI_DEVICES></PCI_DEVICES><NUMA_NODES><NODE><CORE><CPUS>{_c('0:-1,32:-1')}</CPUS>"
        f"<DEDICATED>{_c('NO')}</DEDICATED><FREE>{_c(2)}</FREE><ID>{_c(0)}</ID></CORE>"
        f"<HUGEPAGE><PAGES>{_c(0)}</PAGES><SIZE>{_c(2048)}</SIZE><USAGE>{_c(0)}</USAGE></HUGEPAGE>"
        f"<MEMORY><DISTANCE>{_c('0 1')}</DISTANCE><TOTAL>{_c(total_kib // 2)}</TOTAL>"
        f"<USAGE>{_c(mem_usage_kib // 2)}</USAGE></MEMORY><NODE_ID>{_c(0)}</NODE_ID></NODE></NUMA_NODES>"
        f"</HOST_SHARE><VMS>{ids}</VMS><TEMPLATE><ARCH>{_c('x86_64')}</ARCH>"
        f"<CLOUDVAMP_HOST_MEM_AVAILABLE_KIB>{_c(free)}</CLOUDVAMP_HOST_MEM_AVAILABLE_KIB>"
        f"<CLOUDVAMP_HOST_MEM_TOTAL_KIB>{_c(total_kib)}</CLOUDVAMP_HOST_MEM_TOTAL_KIB>"
        f"<CLOUDVAMP_HOST_PROBE_TIME>{_c(now_s - 30)}</CLOUDVAMP_HOST_PROBE_TIME>"
        f"<CLOUDVAMP_STOLEN_KIB>{_c(0)}</CLOUDVAMP_STOLEN_KIB>"
        f"<CPUSPEED>{_c(2400)}</CPUSPEED><HOSTNAME>{_c(f'node{host_id:04d}')}</HOSTNAME>"
        f"<HYPERVISOR>{_c('kvm')}</HYPERVISOR><IM_MAD>{_c('cloudvamp')}</IM_MAD>"
        f"<KVM_MACHINES>{_c('pc-q35-7.2 q35 pc-i440fx-7.2 pc')}</KVM_MACHINES>"
        f"<MODELNAME>{_c('AMD EPYC 7543 32-Core Processor')}</MODELNAME>"
        f"<RESERVED_CPU>{_c('')}</RESERVED_CPU><RESERVED_MEM>{_c('')}</RESERVED_MEM>"
        f"<TOTALCPU>{_c(6400)}</TOTALCPU><TOTALMEMORY>{_c(total_kib)}</TOTALMEMORY>"
        f"<VERSION>{_c('7.4.0')}</VERSION><VM_MAD>{_c('cloudvamp')}</VM_MAD></TEMPLATE>"
        f"<MONITORING><TIMESTAMP>{now_s - 60}</TIMESTAMP><ID>{host_id}</ID><CAPACITY>"
        f"<FREE_CPU>{_c(3200)}</FREE_CPU><FREE_MEMORY>{_c(free)}</FREE_MEMORY>"
        f"<USED_CPU>{_c(3200)}</USED_CPU><USED_MEMORY>{_c(mem_usage_kib)}</USED_MEMORY></CAPACITY>"
        f"<SYSTEM><NETRX>{_c(0)}</NETRX><NETTX>{_c(0)}</NETTX></SYSTEM></MONITORING></HOST>")


def _monitoring_xml(vm_id: int, rng: random.Random, now_s: int) -> str:
    actual = rng.randint(512, 8192) * MIB
    keys = (("CPU", rng.randint(0, 200)), ("CLOUDVAMP_AVAILABLE_KIB", actual - 150000),
            ("CLOUDVAMP_BALLOON_ACTUAL_KIB", actual), ("CLOUDVAMP_DISK_CACHES_KIB", actual // 8),
            ("CLOUDVAMP_MAJOR_FAULTS", rng.randint(0, 10**5)), ("CLOUDVAMP_MAX_KIB", actual * 2),
            ("CLOUDVAMP_RSS_KIB", actual), ("CLOUDVAMP_STATS_TIME", now_s - 10),
            ("CLOUDVAMP_SWAP_IN_KIB", 0), ("CLOUDVAMP_SWAP_OUT_KIB", 0),
            ("CLOUDVAMP_UNUSED_KIB", actual // 3), ("CLOUDVAMP_USABLE_KIB", actual // 2),
            ("DISKRDBYTES", rng.randint(0, 10**9)), ("DISKRDIOPS", rng.randint(0, 10**6)),
            ("DISKWRBYTES", rng.randint(0, 10**9)), ("DISKWRIOPS", rng.randint(0, 10**6)),
            ("ID", vm_id), ("MEMORY", actual), ("NETRX", rng.randint(0, 10**9)),
            ("NETTX", rng.randint(0, 10**9)), ("TIMESTAMP", now_s - 15))
    return "<MONITORING>" + "".join(f"<{k}>{_c(v)}</{k}>" for k, v in keys) + "</MONITORING>"


def generate_pool(vms: int, hosts: int, seed: int = 1, now_s: int = 1795425474,
                  host_total_kib: int = 512 * 1024 * 1024) -> Tuple[str, str, str]:
    """(vmpool infoextended XML, hostpool XML, vmpool monitoring XML), VMs newest ID first."""
    rng = random.Random(seed)
    host_of = [i % hosts for i in range(vms)]
    vm_buf = io.StringIO()
    vm_buf.write("<VM_POOL>")
    for vm_id in range(vms - 1, -1, -1):
        vm_buf.write(_vm_xml(vm_id, host_of[vm_id], rng, now_s))
    vm_buf.write("</VM_POOL>")
    per_host = [[] for _ in range(hosts)]
    for vm_id, h in enumerate(host_of):
        per_host[h].append(vm_id)
    host_buf = io.StringIO()
    host_buf.write("<HOST_POOL>")
    for h in range(hosts):
        host_buf.write(_host_xml(h, per_host[h], len(per_host[h]) * 4 * 1024 * 1024, now_s,
                                 host_total_kib))
    host_buf.write("</HOST_POOL>")
    mon_buf = io.StringIO()
    mon_buf.write("<MONITORING_DATA>")
    for vm_id in range(vms):
        mon_buf.write(_monitoring_xml(vm_id, rng, now_s))
    mon_buf.write("</MONITORING_DATA>")
    return vm_buf.getvalue(), host_buf.getvalue(), mon_buf.getvalue()
