"""The decision core sits at the bottom: it never imports the layers built on it."""
import ast
import pathlib

import cvem.core

UPPER = ("cvem.policies", "cvem.sim", "cvem.service", "cvem.cli", "cvem.adapters", "cvem.bench")


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
            elif node.level == 1:
                yield "cvem.core." + (node.module or "")
            else:  # ..x from inside cvem/core is cvem.x
                yield "cvem." + (node.module or "")


def test_core_imports_no_upper_layer():
    core = pathlib.Path(cvem.core.__file__).parent
    offenders = [(p.name, m) for p in sorted(core.glob("*.py")) for m in _imports(p)
                 if m.startswith(UPPER)]
    assert offenders == []


def test_policies_implement_the_core_protocol():
    from cvem.core.policy import Policy
    from cvem.policies.base import available_policies, policy_class
    for name in available_policies():
        assert issubclass(policy_class(name), Policy), name
