"""Every OpenNebula-facing attribute name cloudvamp reads or writes, listed once.

These names are the contract between the three parts of cloudvamp:

* the in-guest publisher (``onegate/``) PUTs the ``GUEST_*`` keys to OneGate, which merges
  them into the VM's USER_TEMPLATE;
* the IM probes (``remotes/im/``) report the ``PROBE_*`` keys inside each VM's base64
  ``MONITOR`` field (they land in the VM's MONITORING record) and the ``HOST_*`` keys from
  ``host/system`` (they land in the host TEMPLATE);
* cvem writes the ``SHOW_*`` keys into USER_TEMPLATE with merge-mode ``one.vm.update`` so users
  can see what cloudvamp did, and manages ``RESERVED_MEM`` on hosts when the lend factor is on.

All memory figures are KiB integers; rates are KiB per second; times are Unix epoch seconds.
"""

PREFIX = "CLOUDVAMP_"

# --- published by the guest through OneGate (USER_TEMPLATE) -------------------------------
GUEST_MEM_TOTAL_KIB = "CLOUDVAMP_MEM_TOTAL_KIB"          # MemTotal
GUEST_MEM_AVAILABLE_KIB = "CLOUDVAMP_MEM_AVAILABLE_KIB"  # MemAvailable
GUEST_MEM_USED_KIB = "CLOUDVAMP_MEM_USED_KIB"            # MemTotal - MemAvailable
GUEST_SWAP_USED_KIB = "CLOUDVAMP_SWAP_USED_KIB"          # SwapTotal - SwapFree
GUEST_SWAP_IN_KIB_S = "CLOUDVAMP_SWAP_IN_KIB_S"          # from /proc/vmstat pswpin delta
GUEST_SWAP_OUT_KIB_S = "CLOUDVAMP_SWAP_OUT_KIB_S"        # from /proc/vmstat pswpout delta
GUEST_PSI_SOME_AVG10 = "CLOUDVAMP_PSI_SOME_AVG10"        # /proc/pressure/memory, percent
GUEST_PSI_FULL_AVG10 = "CLOUDVAMP_PSI_FULL_AVG10"        # absent when the kernel has no PSI
GUEST_SEQ = "CLOUDVAMP_SEQ"                              # increases by one per publish
GUEST_TIME = "CLOUDVAMP_TIME"                            # guest clock at sampling, epoch s

GUEST_KEYS = (
    GUEST_MEM_TOTAL_KIB, GUEST_MEM_AVAILABLE_KIB, GUEST_MEM_USED_KIB, GUEST_SWAP_USED_KIB,
    GUEST_SWAP_IN_KIB_S, GUEST_SWAP_OUT_KIB_S, GUEST_PSI_SOME_AVG10, GUEST_PSI_FULL_AVG10,
    GUEST_SEQ, GUEST_TIME,
)

# --- reported by the vm/monitor IM probe (VM MONITORING), from libvirt memoryStats ----------
PROBE_BALLOON_ACTUAL_KIB = "CLOUDVAMP_BALLOON_ACTUAL_KIB"  # current balloon size
PROBE_MAX_KIB = "CLOUDVAMP_MAX_KIB"                        # domain maxMemory
PROBE_USABLE_KIB = "CLOUDVAMP_USABLE_KIB"                  # guest MemAvailable
PROBE_AVAILABLE_KIB = "CLOUDVAMP_AVAILABLE_KIB"            # guest MemTotal
PROBE_UNUSED_KIB = "CLOUDVAMP_UNUSED_KIB"                  # guest MemFree
PROBE_DISK_CACHES_KIB = "CLOUDVAMP_DISK_CACHES_KIB"
PROBE_RSS_KIB = "CLOUDVAMP_RSS_KIB"                        # host-side qemu RSS
PROBE_SWAP_IN_KIB = "CLOUDVAMP_SWAP_IN_KIB"                # cumulative
PROBE_SWAP_OUT_KIB = "CLOUDVAMP_SWAP_OUT_KIB"              # cumulative
PROBE_MAJOR_FAULTS = "CLOUDVAMP_MAJOR_FAULTS"              # cumulative
PROBE_STATS_TIME = "CLOUDVAMP_STATS_TIME"                  # memoryStats last_update, epoch s
# the balloon target the cloudvamp resize action last set (domain metadata), and by how much
# the guest's balloon is above it: it deflated on its own (deflate-on-OOM) = memory pressure
PROBE_BALLOON_TARGET_KIB = "CLOUDVAMP_BALLOON_TARGET_KIB"
PROBE_SELF_DEFLATED_KIB = "CLOUDVAMP_SELF_DEFLATED_KIB"
# 1 when the balloon has deflate-on-OOM: such a guest's MemTotal still includes its balloon
PROBE_AUTODEFLATE = "CLOUDVAMP_BALLOON_AUTODEFLATE"

PROBE_KEYS = (
    PROBE_BALLOON_ACTUAL_KIB, PROBE_MAX_KIB, PROBE_USABLE_KIB, PROBE_AVAILABLE_KIB,
    PROBE_UNUSED_KIB, PROBE_DISK_CACHES_KIB, PROBE_RSS_KIB, PROBE_SWAP_IN_KIB,
    PROBE_SWAP_OUT_KIB, PROBE_MAJOR_FAULTS, PROBE_STATS_TIME, PROBE_BALLOON_TARGET_KIB,
    PROBE_SELF_DEFLATED_KIB, PROBE_AUTODEFLATE,
)

# --- reported by the host/system IM probe (host TEMPLATE) ---------------------------------
HOST_STOLEN_KIB = "CLOUDVAMP_STOLEN_KIB"                   # sum over domains of maxMemory - actual
HOST_MEM_TOTAL_KIB = "CLOUDVAMP_HOST_MEM_TOTAL_KIB"        # /proc/meminfo MemTotal
HOST_MEM_AVAILABLE_KIB = "CLOUDVAMP_HOST_MEM_AVAILABLE_KIB"  # /proc/meminfo MemAvailable
HOST_PROBE_TIME = "CLOUDVAMP_HOST_PROBE_TIME"              # epoch s

HOST_KEYS = (HOST_STOLEN_KIB, HOST_MEM_TOTAL_KIB, HOST_MEM_AVAILABLE_KIB, HOST_PROBE_TIME)

# --- written by cvem into USER_TEMPLATE (merge mode), so users see what happened ----------
SHOW_NOMINAL_MIB = "CLOUDVAMP_NOMINAL_MIB"
SHOW_STATE = "CLOUDVAMP_STATE"          # MANAGED / IGNORED / ...
SHOW_REASON = "CLOUDVAMP_REASON"
SHOW_LAST_ACTION = "CLOUDVAMP_LAST_ACTION"
# OneDRS (7.x) keeps a VM whose USER_TEMPLATE says ONEDRS_BLOCKED="YES" on its host when it
# optimises a cluster (src/schedm_mad/remotes/one_drs/lib/optimizer_parser.py)
ONEDRS_BLOCKED = "ONEDRS_BLOCKED"

# --- template opt-out and lend factor bookkeeping -----------------------------------------
OPT_OUT = "CLOUDVAMP"                   # CLOUDVAMP="NO" in the VM template opts a VM out
OPT_OUT_VALUES = ("NO", "FALSE", "OFF", "0", "DISABLED")   # case-insensitive
# read by the deploy action from the VM template; "NO" turns one balloon option off
VM_AUTODEFLATE = "CLOUDVAMP_AUTODEFLATE"
VM_FREE_PAGE_REPORTING = "CLOUDVAMP_FREE_PAGE_REPORTING"
VM_BALLOON_STATS = "CLOUDVAMP_BALLOON_STATS"
HOST_BASE_RESERVED_MEM = "CLOUDVAMP_BASE_RESERVED_MEM"  # admin's own RESERVED_MEM, kept aside
