"""Build hook for the one optional C extension (metadata lives in setup.cfg).

iipy.jpeg._dctsplice lets a watermarked JPEG tile be made by re-encoding only the
blocks the mark covers (see iipy/jpeg/markjpeg.py).  It is optional: when it cannot
be compiled (no C compiler or Python headers), iipy installs and runs, and
watermarked tiles take the ordinary decode/encode path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "iipy.jpeg._dctsplice",
            ["iipy/jpeg/_dctsplice.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-std=gnu99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
