"""Lending strategies: how much of a host's memory OpenNebula's scheduler may count as free,
registered as ``cloudvamp.lending`` entry points (see :mod:`cvem.lending.base`)."""
from .base import (HostNow, Strategy, Window, available_strategies,  # noqa: F401
                   load_strategy)
