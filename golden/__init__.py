"""NumPy golden model of the HDP co-processor: the bit-exact reference for the RTL."""
from .model import *  # noqa: F401,F403
from .model import __all__  # noqa: F401
