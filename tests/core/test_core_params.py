"""build_params: every error names the offending key; policy registry and entry points."""

from dataclasses import dataclass, field
from importlib.metadata import entry_points

import numpy as np
import pytest

from cvem.core.guards import GuardParams
from cvem.core.params import build_params, describe_params
from cvem.errors import ConfigError
from cvem.policies import available_policies, load_policy
from cvem.policies.base import Policy, policy_class


@dataclass(frozen=True)
class Knobs:
    ratio: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0, "help": "a ratio"})
    count: int = field(default=3, metadata={"min": 1, "help": "a count"})
    on: bool = False
    label: str = "x"


def test_defaults_and_text_conversion():
    assert build_params(Knobs) == Knobs()
    p = build_params(Knobs, {"ratio": " 0.25 ", "count": "7", "on": "yes", "label": "y"})
    assert p == Knobs(ratio=0.25, count=7, on=True, label="y")
    assert build_params(Knobs, {"ratio": 1, "count": np.int64(2), "on": False}).ratio == 1.0


@pytest.mark.parametrize("values, key, words", [
    ({"colour": "red"}, "colour", "unknown"),
    ({"ratio": "half"}, "ratio", "expected"),
    ({"count": "2.5"}, "count", "expected"),
    ({"count": 2.5}, "count", "integer"),
    ({"count": True}, "count", "integer"),
    ({"ratio": [1]}, "ratio", "number"),
    ({"ratio": "nan"}, "ratio", "expected"),
    ({"on": "maybe"}, "on", "expected"),
    ({"on": 2}, "on", "expected"),
    ({"ratio": "-0.1"}, "ratio", "below its minimum 0.0"),
    ({"ratio": 1.5}, "ratio", "above its maximum 1.0"),
    ({"count": 0}, "count", "below its minimum 1"),
])
def test_errors_name_the_key(values, key, words):
    with pytest.raises(ConfigError) as err:
        build_params(Knobs, values, where="policy:test")
    message = str(err.value)
    assert key in message and words in message
    assert message.startswith("[policy:test] ")


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: count, label, on, ratio"):
        build_params(Knobs, {"colour": "red"})


def test_validate_runs_after_the_bounds():
    with pytest.raises(ConfigError, match="floor_kib"):
        build_params(GuardParams, {"floor_kib": "-1"}, "guards")


def test_describe_params_rows():
    assert describe_params(Knobs)[:2] == [("ratio", 0.5, "a ratio"), ("count", 3, "a count")]


# ------------------------------------------------------------------------------ registry

BUILTIN = {"none", "cloudvamp2015", "vpa", "max-window", "oracle", "default"}


def test_every_builtin_policy_loads_by_name_with_defaults():
    assert BUILTIN <= set(available_policies())
    for name in BUILTIN:
        policy = load_policy(name)
        assert isinstance(policy, Policy)
        assert policy.name == name
        policy.guard_params()  # its guard defaults are valid guard params


def test_unknown_policy_error_lists_the_available_ones():
    with pytest.raises(ConfigError) as err:
        load_policy("magic")
    message = str(err.value)
    assert "'magic'" in message
    for name in BUILTIN:
        assert name in message


def test_policy_parameters_are_validated_with_the_section_name():
    with pytest.raises(ConfigError, match=r"\[policy:vpa\] percentile=2.0 is above"):
        load_policy("vpa", {"percentile": "2.0"})
    assert load_policy("vpa", {"percentile": "0.95"}).params.percentile == 0.95


def test_guard_overrides_on_top_of_the_policy_defaults():
    policy = load_policy("cloudvamp2015")
    assert policy.guard_params().cooldown_s == 10.0
    assert policy.guard_params({"cooldown_s": "30"}).cooldown_s == 30.0
    with pytest.raises(ConfigError, match=r"\[guards\] unknown parameter\(s\) cooldown;"):
        policy.guard_params({"cooldown": "30"})


def test_setup_cfg_entry_points_resolve_to_the_same_classes():
    eps = {ep.name: ep for ep in entry_points(group="cloudvamp.policies")}
    if not eps:
        pytest.skip("cloudvamp is not installed (no entry-point metadata)")
    assert BUILTIN <= set(eps)
    for name in BUILTIN:
        cls = eps[name].load()
        assert cls is policy_class(name)
        assert cls.name == name


def test_only_the_oracle_is_simulation_only():
    assert {n for n in BUILTIN if policy_class(n).simulation_only} == {"oracle"}
