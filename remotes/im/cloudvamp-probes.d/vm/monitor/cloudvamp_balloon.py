#!/usr/bin/env python3
# cloudvamp vm/monitor probe: CLOUDVAMP_* balloon figures per domain (see cloudvamp_host/vm_monitor.py).
# Runs on the host as: cloudvamp_balloon.py <im_mad> <host_id> <hostname>  (monitord config XML on stdin)
# Always exits 0: a failing probe would mark the whole probe category (and host) as failed.
import os
import sys

try:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "..", "..", "lib", "python"))
    from cloudvamp_host.vm_monitor import main
except BaseException as error:  # broken install: complain, never fail monitoring
    sys.stderr.write("cloudvamp probe cloudvamp_balloon.py: cannot load cloudvamp_host: %s\n" % error)
    sys.exit(0)
main(sys.argv)
