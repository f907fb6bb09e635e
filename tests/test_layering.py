"""Import rules of docs/design.md, checked by reading every module's imports.

- ``stack`` (sans-IO) imports nothing from asyncio, socket, os, time, select,
  threading, the device layer, or the loop/transports.
- ``stack.wire`` imports only from itself (and the standard library).
- ``device`` never imports ``stack``.
- only ``loop.py``, ``_transports.py`` and ``_server.py`` import asyncio, besides the applications
  built on it (``cli.py``, ``demo.py``) and ``netns.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ethox_asyncio"
STACK_FORBIDDEN = {"asyncio", "socket", "os", "time", "select", "selectors", "threading",
                   "uvloop", "liburing", "fcntl", "mmap", "subprocess"}
ASYNCIO_ALLOWED = {"loop.py", "_transports.py", "_server.py", "cli.py", "__init__.py", "netns.py",
                   "demo.py"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("stack"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_stack_is_sans_io(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in STACK_FORBIDDEN, f"{path.name} imports {name}: stack must stay sans-IO"
        assert not name.startswith("ethox_asyncio.device"), f"{path.name} imports the device layer"
        assert not name.startswith(("ethox_asyncio.loop", "ethox_asyncio._transports")), path.name


@pytest.mark.parametrize("path", _modules("stack/wire"), ids=lambda p: p.name)
def test_wire_imports_only_wire(path: Path) -> None:
    for name in _imports(path):
        if name.startswith("ethox_asyncio"):
            assert name.startswith("ethox_asyncio.stack.wire"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", _modules("device"), ids=lambda p: p.name)
def test_device_does_not_import_stack(path: Path) -> None:
    for name in _imports(path):
        assert not name.startswith("ethox_asyncio.stack"), f"{path.name} imports {name}"
        assert not name.startswith(("ethox_asyncio.loop", "ethox_asyncio._transports"))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_loop_imports_asyncio(path: Path) -> None:
    if path.parent == PACKAGE and path.name in ASYNCIO_ALLOWED:
        return
    for name in _imports(path):
        assert name.split(".")[0] not in {"asyncio", "uvloop"}, f"{path} imports {name}"


def test_the_checker_resolves_relative_imports() -> None:
    """Guard against a vacuous rule set: the resolver must see real imports."""
    names = _imports(PACKAGE / "stack" / "wire" / "checksum.py")
    assert "enum" in names and "dataclasses" in names
    names = _imports(PACKAGE / "stack" / "wire" / "ethernet.py")
    assert "ethox_asyncio.stack.wire.errors" in names
