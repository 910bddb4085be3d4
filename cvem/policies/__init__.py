"""Pluggable sizing policies, registered as ``cloudvamp.policies`` entry points."""
from .base import Policy, available_policies, load_policy  # noqa: F401
