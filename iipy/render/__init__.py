"""From a View to encoded bytes: caches, pass-through, tiles, regions and exports.

renderer.py is the entry point the protocols call; the other modules hold the pixel
pipeline (geometry, transforms, float ops, resampling, watermarking, encoders) and the
image sequences.  Reads pixels only through decoders/ and JPEG tricks through jpeg/.
"""
