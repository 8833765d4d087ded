"""JPEG codec tricks on stored tiles, below the decoders and the renderer.

markers.py parses and writes JPEG markers; splice.py turns a TIFF's JPEGTables and tile
into a stand-alone JPEG for pass-through; markjpeg.py (with the optional C extension
_dctsplice) watermarks a stored tile in the DCT domain.  Imports only the core.
"""
