"""Plug-ins found by name: the built-in ones plus what a site ships in its own package through
an entry-point group (policies, lending strategies)."""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Dict, Mapping, Tuple

from .errors import ConfigError


class PluginRegistry:
    """Names → ``module:attribute`` targets, loaded only when asked for."""

    def __init__(self, group: str, builtin: Mapping[str, str], unknown_message: str):
        self.group = group
        self._builtin = dict(builtin)
        self._unknown_message = unknown_message   # str.format(name=..., available=...)

    def targets(self) -> Dict[str, str]:
        found = dict(self._builtin)
        try:
            for ep in entry_points(group=self.group):
                found[ep.name] = ep.value
        except Exception:  # a broken third-party distribution must not hide the built-ins
            pass
        return found

    def names(self) -> Tuple[str, ...]:
        return tuple(sorted(self.targets()))

    def load_class(self, name: str) -> type:
        target = self.targets().get(name)
        if target is None:
            raise ConfigError(self._unknown_message.format(
                name=repr(name), available=", ".join(self.names())))
        module_name, _, attr = target.partition(":")
        return getattr(import_module(module_name), attr)
