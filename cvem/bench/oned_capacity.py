"""oned's write capacity: how many ``one.vm.update`` per second it sustains.

Every OneGate PUT and every show attribute is one; on the test bed's oned (sqlite) they are
serialised on the database, so the rate is the same whatever the number of clients. This
times ``clients`` threads writing a small USER_TEMPLATE merge to one VM of its own (allocated
on hold, never deployed, deleted afterwards) for ``duration_s`` seconds, the way publishers
do. Only for a test OpenNebula: it adds load to the oned it measures.
"""
from __future__ import annotations

import threading
import time
import xmlrpc.client
from typing import Dict

TEMPLATE = 'NAME="cvem-capacity-probe"\nMEMORY="64"\nCPU="0.01"\n'


def _call(proxy, session, method, *args):
    answer = getattr(proxy, method)(session, *args)
    if not answer[0]:
        raise RuntimeError(f"{method}: {answer[1]}")
    return answer[1]


def measure_update_capacity(endpoint: str, session: str, clients: int = 4,
                            duration_s: float = 10.0) -> Dict[str, float]:
    """{'updates_per_s', 'clients', 'duration_s', 'failed'}: accepted updates per second."""
    proxy = xmlrpc.client.ServerProxy(endpoint)
    vm_id = _call(proxy, session, "one.vm.allocate", TEMPLATE, True)   # on hold
    done, failed = [0] * clients, [0] * clients
    stop_at = time.monotonic() + duration_s

    def writer(index: int) -> None:
        own = xmlrpc.client.ServerProxy(endpoint)
        seq = 0
        while time.monotonic() < stop_at:
            seq += 1
            body = f'CLOUDVAMP_SEQ="{seq}"\nCLOUDVAMP_TIME="{int(time.time())}"\n'
            try:
                ok = own.one.vm.update(session, vm_id, body, 1)[0]
            except (OSError, xmlrpc.client.Error):
                ok = False
            if ok:
                done[index] += 1
            else:
                failed[index] += 1
    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        elapsed_s = time.monotonic() - started
        try:
            _call(proxy, session, "one.vm.recover", vm_id, 3)   # delete
        except (RuntimeError, OSError, xmlrpc.client.Error):
            pass
    return {"updates_per_s": round(sum(done) / elapsed_s, 1), "clients": clients,
            "duration_s": round(elapsed_s, 1), "failed": sum(failed)}
