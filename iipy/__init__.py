"""iipy: an IIPImage-compatible image server."""

__version__ = "0.1.0"
