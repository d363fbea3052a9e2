"""consortium: a federated-learning kit for cross-silo hospital consortia on NVIDIA FLARE.

Only :mod:`consortium.flare` and :mod:`consortium.cli` import ``nvflare``; everything else is
plain Python/NumPy/PyTorch that a unit test calls directly.
"""

__version__ = "0.1.0"
