"""Models: the Net1D architecture, known weights, and safe checkpoint loading."""

from .net1d import Net1D, Net1DConfig, net1d_1lead, net1d_12lead

__all__ = ["Net1D", "Net1DConfig", "net1d_12lead", "net1d_1lead"]
