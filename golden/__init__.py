"""NumPy golden model of the HDP co-processor: the bit-exact reference for the RTL.

:mod:`.model` (the head, step by step), :mod:`.matmul` (the pluggable integer matrix
products), :mod:`.selectors` (the block-selection policies), :mod:`.reference` (float64
softmax attention).
"""
from . import matmul, model, reference, selectors
from .matmul import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .reference import *  # noqa: F401,F403
from .selectors import *  # noqa: F401,F403

__all__ = [*matmul.__all__, *model.__all__, *reference.__all__, *selectors.__all__]
