"""iipy: an IIPImage-compatible image server."""

import os

# Each worker serves one request at a time: numpy's OpenBLAS must not wake a
# thread pool for the small matrix products of a request (measured: it doubled
# the cost of the DCT work in markjpeg.py on a 2-core machine).  Set before
# numpy is first imported; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
