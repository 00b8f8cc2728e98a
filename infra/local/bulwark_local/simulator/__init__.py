"""Bulwark's local Azure simulator: ARM control plane (compute, SQL, ACI), managed-disk data plane, faults.

Start it in-process with ``Simulator(state_dir).start()`` or as a process with
``running_simulator(state_dir)`` / ``python -m bulwark_local.simulator --state DIR``.
Module map: server (process, routing, fault hooks) -> providers (compute, network, sql, aci)
-> arm (errors, routes, long-running operations) + dataplane (SAS, page blobs) + admin + faults
-> state (JSON estate) + pagestore (copy-on-write pages) + sqldata/bacpac + tls + vhd.
"""

from .process import SimulatorEndpoints, running_simulator, start_simulator
from .server import Simulator

__all__ = ["Simulator", "SimulatorEndpoints", "running_simulator", "start_simulator"]
