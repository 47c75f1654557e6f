"""Simulated speakers: a fleet of reference agents in one process, and `broadcastd demo`."""

from broadcastd.sim.fleet import Fleet

__all__ = ["Fleet"]
