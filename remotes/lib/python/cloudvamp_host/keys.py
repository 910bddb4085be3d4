"""OpenNebula attribute names the host side writes: a copy of the names in ``cvem/keys.py``.

Hosts cannot import ``cvem`` (it is not installed there), so the names are repeated here;
``tests/host/test_keys_contract.py`` fails if the two ever differ.
"""

# --- vm/monitor probe: inside each VM's base64 MONITOR field (VM MONITORING) --------------
PROBE_BALLOON_ACTUAL_KIB = "CLOUDVAMP_BALLOON_ACTUAL_KIB"
PROBE_MAX_KIB = "CLOUDVAMP_MAX_KIB"
PROBE_USABLE_KIB = "CLOUDVAMP_USABLE_KIB"
PROBE_AVAILABLE_KIB = "CLOUDVAMP_AVAILABLE_KIB"
PROBE_UNUSED_KIB = "CLOUDVAMP_UNUSED_KIB"
PROBE_DISK_CACHES_KIB = "CLOUDVAMP_DISK_CACHES_KIB"
PROBE_RSS_KIB = "CLOUDVAMP_RSS_KIB"
PROBE_SWAP_IN_KIB = "CLOUDVAMP_SWAP_IN_KIB"
PROBE_SWAP_OUT_KIB = "CLOUDVAMP_SWAP_OUT_KIB"
PROBE_MAJOR_FAULTS = "CLOUDVAMP_MAJOR_FAULTS"
PROBE_STATS_TIME = "CLOUDVAMP_STATS_TIME"

PROBE_KEYS = (
    PROBE_BALLOON_ACTUAL_KIB, PROBE_MAX_KIB, PROBE_USABLE_KIB, PROBE_AVAILABLE_KIB,
    PROBE_UNUSED_KIB, PROBE_DISK_CACHES_KIB, PROBE_RSS_KIB, PROBE_SWAP_IN_KIB,
    PROBE_SWAP_OUT_KIB, PROBE_MAJOR_FAULTS, PROBE_STATS_TIME,
)

# libvirt virDomainMemoryStats tag -> our key. 'actual' and the maximum are handled apart
# because they have fallbacks (info()) when the domain has no balloon statistics.
MEMORY_STATS_TO_PROBE_KEY = {
    "usable": PROBE_USABLE_KIB,
    "available": PROBE_AVAILABLE_KIB,
    "unused": PROBE_UNUSED_KIB,
    "disk_caches": PROBE_DISK_CACHES_KIB,
    "rss": PROBE_RSS_KIB,
    "swap_in": PROBE_SWAP_IN_KIB,
    "swap_out": PROBE_SWAP_OUT_KIB,
    "major_fault": PROBE_MAJOR_FAULTS,
    "last_update": PROBE_STATS_TIME,
}

# --- host/system probe: merged into the host TEMPLATE -------------------------------------
HOST_STOLEN_KIB = "CLOUDVAMP_STOLEN_KIB"
HOST_MEM_TOTAL_KIB = "CLOUDVAMP_HOST_MEM_TOTAL_KIB"
HOST_MEM_AVAILABLE_KIB = "CLOUDVAMP_HOST_MEM_AVAILABLE_KIB"
HOST_PROBE_TIME = "CLOUDVAMP_HOST_PROBE_TIME"

HOST_KEYS = (HOST_STOLEN_KIB, HOST_MEM_TOTAL_KIB, HOST_MEM_AVAILABLE_KIB, HOST_PROBE_TIME)
