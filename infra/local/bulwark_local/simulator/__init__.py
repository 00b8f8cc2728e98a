"""Bulwark's local Azure simulator: ARM control plane (compute) and the managed-disk data plane.

Start it in-process with ``Simulator(state_dir).start()`` or as a process with
``running_simulator(state_dir)`` / ``python -m bulwark_local.simulator --state DIR``.
Module map: server (process, routing) -> providers (compute; later sql, containerinstance)
-> arm (errors, routes, long-running operations) + dataplane (SAS, page blobs) + admin
-> state (JSON estate) + pagestore (copy-on-write pages) + tls + vhd.
"""

from .process import SimulatorEndpoints, running_simulator, start_simulator
from .server import Simulator

__all__ = ["Simulator", "SimulatorEndpoints", "running_simulator", "start_simulator"]
