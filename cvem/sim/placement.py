"""Initial placement of the simulated cloud: first-fit on nominal memory, the status quo of
an OpenNebula cloud before cloudvamp (the scheduler books every VM at its full MEMORY)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    host_of_vm: np.ndarray       # int64 [vm]
    capacity_kib: np.ndarray     # float64 [host]: physical minus reserve (MAX_MEM)
    physical_kib: float
    reserve_kib: float

    @property
    def hosts(self) -> int:
        return int(self.capacity_kib.shape[0])


def first_fit(nominal_kib: np.ndarray, physical_kib: float, reserve_kib: float) -> Placement:
    """Place VMs in order on the first host whose unbooked capacity holds their nominal size.

    A VM larger than a host gets a host of its own size (an operator buys the machine such a
    VM needs; a replay must never fail on it).
    """
    capacity = physical_kib - reserve_kib
    if capacity <= 0:
        raise ValueError("host reserve is larger than the host")
    free: list = []
    sizes: list = []
    host_of = np.empty(nominal_kib.shape[0], dtype=np.int64)
    for i, size in enumerate(nominal_kib):
        if size > capacity:
            free.append(0.0)
            sizes.append(float(size))
            host_of[i] = len(free) - 1
            continue
        for h, room in enumerate(free):
            if room >= size:
                free[h] = room - size
                host_of[i] = h
                break
        else:
            free.append(capacity - size)
            sizes.append(float(capacity))
            host_of[i] = len(free) - 1
    return Placement(host_of_vm=host_of, capacity_kib=np.array(sizes, dtype=np.float64),
                     physical_kib=float(physical_kib), reserve_kib=float(reserve_kib))
