"""A simulated Asterisk PBX that speaks real AMI (see ``pbx.start_simulator``)."""

from callcenter.simulator.pbx import SimulatedPBX, start_simulator

__all__ = ["SimulatedPBX", "start_simulator"]
