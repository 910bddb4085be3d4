"""Issue 10, defect 11: the test suite runs from a lone clone.

What the tests need from OpenNebula (its 7.4 XSDs and recordings of a real oned) is carried
in ``tests/fixtures/opennebula`` with its origin and licence; only the Bitbrains traces stay
outside the repository (their tests skip with a reason). No path of one machine anywhere.
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "opennebula")
SKIP_DIRS = {".git", ".venv", "build", "demo-out", "__pycache__", ".pytest_cache",
             ".hypothesis", "cloudvamp.egg-info", "fixtures"}
MACHINE_PATH = re.compile(r"(?<![\w.])/work/|/tmp/(?:tb|lone|wt)-?\w|/root/")


def project_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            if name.endswith((".py", ".sh", ".md", ".cfg", ".toml", ".conf", ".in", ".txt")) \
                    or "." not in name:
                yield os.path.join(dirpath, name)


def test_no_path_of_a_particular_machine():
    offenders = []
    for path in project_files():
        if os.path.samefile(path, __file__):
            continue
        try:
            text = open(path, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append("%s:%d: %s" % (os.path.relpath(path, ROOT), number,
                                                line.strip()))
    assert not offenders, "\n".join(offenders)


def test_opennebula_fixtures_are_in_the_repository_with_origin_and_licence():
    for name in ("vm", "vm_pool", "vm_pool_extended", "host", "host_pool", "monitoring_data",
                 "shared"):
        assert os.path.isfile(os.path.join(FIXTURES, name + ".xsd")), name
    recordings = os.path.join(FIXTURES, "real-7.4")
    assert os.path.isfile(os.path.join(recordings, "calls.jsonl"))
    readme = open(os.path.join(FIXTURES, "README.md"), encoding="utf-8").read()
    assert "OpenNebula 7.4.0" in readme and "Apache License 2.0" in readme
    licence = open(os.path.join(FIXTURES, "LICENSE"), encoding="utf-8").read()
    assert "Apache License" in licence and "Version 2.0" in licence


def test_test_helpers_read_the_fixtures_in_the_repository():
    from tests.doubles import xsd
    from tests.frontend import fe_support
    assert os.path.realpath(xsd.XSD_DIR) == os.path.realpath(FIXTURES)
    assert os.path.realpath(fe_support.RECORDINGS) == os.path.realpath(
        os.path.join(FIXTURES, "real-7.4"))
