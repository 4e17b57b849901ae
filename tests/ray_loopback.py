"""``ray start`` for test clusters that must stay on 127.0.0.1: ``python -m tests.ray_loopback start ...``.

On Linux, ``ray start --address 127.0.0.1:PORT`` replaces a loopback address with the machine's
outbound address (``ray._private.services.resolve_ip_for_localhost``) before connecting, so a worker
node could only join a head that listens on a public interface. This runs Ray's own CLI with that
one substitution turned off; everything else is the real ``ray start``.
"""

from __future__ import annotations

import sys

import ray._private.services as services
from ray.scripts.scripts import main

services.resolve_ip_for_localhost = lambda host: host

if __name__ == "__main__":
    sys.exit(main())
