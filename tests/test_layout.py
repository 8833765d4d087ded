"""The folder plan (shared/docs/layout.md, README "Layout"), asserted from the import graph.

A request goes serve -> protocols -> render -> decoders -> jpeg -> core; each room may
import only what lies below it.  Every import statement under iipy/ is read with ``ast``
(module level and inside functions alike), resolved to the iipy module it names, and
checked against the rules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "iipy"

# which rooms each room may import (besides itself); "core" is the modules directly in iipy/
ALLOWED = {
    "core": set(),
    "jpeg": {"core"},
    "decoders": {"jpeg", "core"},
    "render": {"decoders", "jpeg", "core"},
    "protocols": {"render", "core"},
    "serve": {"protocols", "render", "core"},
    "tools": {"serve", "protocols", "render", "decoders", "jpeg", "core"},
}
# the entry points sit on top of everything (the `iipy` command and `python -m iipy`)
ENTRY = {"iipy.cli", "iipy.__main__"}
# third-party packages confined to some rooms
CONFINED = {"pyvips": {"decoders", "tools"}, "glymur": {"decoders", "tools"}, "flup": {"serve"}}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "core"


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from . import x" may name a submodule
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def iipy_module(name: str, known: dict[str, Path]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def violations() -> list[str]:
    known = modules()
    bad = []
    for module, path in known.items():
        if module == "iipy":
            continue
        source = room(module)
        for line, target in imports(module, path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            top = target.split(".")[0]
            if top in CONFINED and source not in CONFINED[top]:
                bad.append(f"{where}: {source}/ imports {top}")
            if top != "iipy" or module in ENTRY:
                continue
            resolved = iipy_module(target, known)
            if resolved is None or resolved == "iipy":
                continue
            if resolved in ENTRY:
                bad.append(f"{where}: imports the entry point {resolved}")
                continue
            dest = room(resolved)
            if dest != source and dest not in ALLOWED[source]:
                bad.append(f"{where}: {source}/ imports {dest} ({resolved})")
    return bad


def test_every_room_imports_only_what_lies_below_it():
    assert violations() == []


def test_the_rule_checker_sees_upward_imports(tmp_path, monkeypatch):
    """The checker itself would catch a core module importing the renderer."""
    fake = tmp_path / "iipy"
    (fake / "render").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "render" / "__init__.py").write_text("")
    (fake / "render" / "renderer.py").write_text("import pyvips\n")
    (fake / "settings.py").write_text("from .render import renderer\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = violations()
    assert any("iipy/settings.py:1: core/ imports render" in v for v in found), found
    assert any("render/ imports pyvips" in v for v in found), found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_grows_past_the_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"split {path.name} by what it holds"


def test_the_rooms_exist():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} >= set(
        ALLOWED) - {"core"}
