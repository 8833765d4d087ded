"""The deployment files shipped with iipy, printed by ``iipy config NAME``.

They live at the top of the source tree (``apache/``, ``lighttpd/``, ``nginx/``,
``conf/``), where the tests render them; the wheel carries copies under
``iipy/configs/`` (setup.py copies them at build time), so a server installed
with pip, without the clone, can still print them::

    iipy config apache > /etc/apache2/conf-available/iipy.conf
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: name -> files (relative to the source tree) printed for it, in order
CONFIGS: dict[str, tuple[str, ...]] = {
    "apache": ("apache/iipy.conf",),
    "lighttpd": ("lighttpd/iipy.conf",),
    "nginx": ("nginx/*.conf",),
    "systemd": ("conf/iipy.service",),
    "systemd-socket": ("conf/iipy.socket",),
    "environment": ("conf/iipy.env",),
    "logrotate": ("conf/iipy.logrotate",),
}
#: where the wheel keeps its copies, inside the package
PACKAGE_DIR = "configs"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _roots() -> list[Path]:
    roots = []
    packaged = resources.files("iipy") / PACKAGE_DIR
    if packaged.is_dir():
        roots.append(Path(str(packaged)))
    roots.append(SOURCE_ROOT)  # a clone or an editable install
    return roots


def files(name: str) -> list[Path]:
    """The files shipped for ``name`` (empty when this build has none)."""
    for root in _roots():
        found: list[Path] = []
        for pattern in CONFIGS[name]:
            found += sorted(root.glob(pattern))
        if found:
            return found
    return []


def text(name: str) -> str:
    """The files of ``name`` joined; KeyError for an unknown name, LookupError when absent."""
    if name not in CONFIGS:
        raise KeyError(name)
    found = files(name)
    if not found:
        raise LookupError(f"no {name} configuration is shipped with this build")
    if len(found) == 1:
        return found[0].read_text()
    return "".join(f"# ---- {p.name}\n{p.read_text()}" for p in found)


def main(argv: list[str]) -> int:
    """``iipy config [NAME]``: print a shipped configuration, or list them."""
    import sys

    if not argv or argv[0] in ("-h", "--help", "list"):
        sys.stdout.write("usage: iipy config NAME   (prints it; redirect it to a file)\n")
        for name in CONFIGS:
            shipped = ", ".join(p.name for p in files(name)) or "not shipped in this build"
            sys.stdout.write(f"  {name:15} {shipped}\n")
        return 0
    try:
        sys.stdout.write(text(argv[0]))
    except KeyError:
        sys.stderr.write(f"iipy config: unknown name {argv[0]!r}; one of {', '.join(CONFIGS)}\n")
        return 2
    except LookupError as exc:
        sys.stderr.write(f"iipy config: {exc}\n")
        return 1
    return 0
