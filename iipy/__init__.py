"""iipy: an IIPImage-compatible image server."""

import os

# Each worker process serves one request at a time, and the workers already
# share the cores: numpy's OpenBLAS must not wake a thread pool for the small
# matrix products of a request (colour matrices, CTW).  Measured on a 2-core
# machine with 64x64 products per tile: the pool's wake-ups doubled their
# cost.  Set before numpy is first imported; the environment's setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
