"""Build hooks (metadata lives in setup.cfg).

1. The one optional C extension: iipy.jpeg._dctsplice lets a watermarked JPEG tile
   be made by re-encoding only the blocks the mark covers (see
   iipy/jpeg/markjpeg.py).  When it cannot be compiled (no C compiler or Python
   headers), iipy installs and runs, warns at start-up, and watermarked tiles take
   the ordinary decode/encode path.
2. The deployment files at the top of the tree (apache/, lighttpd/, nginx/, conf/)
   are copied into the wheel as iipy/configs/..., so that ``iipy config NAME``
   prints them on a server installed without the clone (iipy/configs.py).
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

CONFIG_DIRS = ("apache", "lighttpd", "nginx", "conf")


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "iipy" / "configs"
        for folder in CONFIG_DIRS:
            for source in sorted((root / folder).glob("*")):
                if source.is_file():
                    destination = target / folder / source.name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, destination)


setup(
    cmdclass={"build_py": BuildWithConfigs},
    ext_modules=[
        Extension(
            "iipy.jpeg._dctsplice",
            ["iipy/jpeg/_dctsplice.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-std=gnu99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ],
)
