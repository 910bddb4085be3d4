"""The host library repeats cvem.keys' names (hosts cannot import cvem): they must not drift."""

import sys

import cvem.keys
from hostkit import HOST_LIB

sys.path.insert(0, str(HOST_LIB))
from cloudvamp_host import keys as host_keys  # noqa: E402


def test_probe_keys_equal_cvem_keys():
    assert host_keys.PROBE_KEYS == cvem.keys.PROBE_KEYS
    for name in dir(cvem.keys):
        if name.startswith("PROBE_") and name != "PROBE_KEYS":
            assert getattr(host_keys, name) == getattr(cvem.keys, name), name


def test_host_keys_equal_cvem_keys():
    assert host_keys.HOST_KEYS == cvem.keys.HOST_KEYS
    for name in dir(cvem.keys):
        if name.startswith("HOST_") and name not in ("HOST_KEYS", "HOST_BASE_RESERVED_MEM"):
            assert getattr(host_keys, name) == getattr(cvem.keys, name), name


def test_every_probe_key_has_a_source():
    mapped = set(host_keys.MEMORY_STATS_TO_PROBE_KEY.values())
    mapped |= {host_keys.PROBE_BALLOON_ACTUAL_KIB, host_keys.PROBE_MAX_KIB,
               host_keys.PROBE_BALLOON_TARGET_KIB, host_keys.PROBE_SELF_DEFLATED_KIB,
               host_keys.PROBE_AUTODEFLATE}
    assert mapped == set(host_keys.PROBE_KEYS)


def test_deploy_switch_keys_equal_cvem_keys():
    assert host_keys.VM_OPT_OUT == cvem.keys.OPT_OUT
    for name in ("VM_AUTODEFLATE", "VM_FREE_PAGE_REPORTING", "VM_BALLOON_STATS"):
        assert getattr(host_keys, name) == getattr(cvem.keys, name), name


def test_host_library_imports_no_cvem():
    for path in (HOST_LIB / "cloudvamp_host").glob("*.py"):
        text = path.read_text()
        assert "import cvem" not in text and "from cvem" not in text, path
