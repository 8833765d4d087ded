"""Build hook for the one optional C extension (metadata lives in setup.cfg).

iipy._dctsplice lets a watermarked JPEG tile be made by re-encoding only the
blocks the mark covers (see iipy/markjpeg.py).  It is optional: when it cannot
be compiled (no C compiler or Python headers), iipy installs and runs, and
watermarked tiles take the ordinary decode/encode path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "iipy._dctsplice",
            ["iipy/_dctsplice.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-std=gnu99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
