"""The package's layers: no import points from a lower layer to a higher one.

errors, element, inputs, model < statusxml < store; model < qemu; statusxml, store, qemu < jobs <
recovery < tracker < cli, demo; validation uses statusxml.parse, statusxml.mirrors (the mirror
rule libvirt loads by) and statusxml.spans (the lines lxml does not count) only; testing/ (a
pytest plugin) may use statusxml, validation and the store (golden files are written
atomically). The package's `__init__` (the public facade) and `__main__` sit above everything
and are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "blockjob"

_BASE = {"errors", "inputs", "element"}
_CODEC = _BASE | {"model", "statusxml"}
_BELOW_JOBS = _CODEC | {"store", "qemu"}
_BELOW_FRONT = _BELOW_JOBS | {"jobs", "recovery"}
# What each layer may import besides itself. A dotted entry allows just that module.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "element": set(),
    "inputs": {"errors"},
    "model": {"errors", "element"},
    "statusxml": _BASE | {"model"},
    "store": _CODEC,
    "qemu": {"errors", "element", "model"},
    "validation": _BASE | {"statusxml.parse", "statusxml.mirrors", "statusxml.spans"},
    "jobs": _BELOW_JOBS,
    "recovery": _BELOW_JOBS | {"jobs"},
    "tracker": _BELOW_FRONT,
    "demo": _BELOW_FRONT | {"tracker", "validation"},
    "cli": _BELOW_FRONT | {"tracker", "validation", "demo"},
    "testing": _CODEC | {"validation", "store"},
}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every `blockjob` import in `path`, relative ones resolved;
    imports inside functions and `if TYPE_CHECKING:` count too."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _module_name(path) if path.name == "__init__.py" else (
                    _module_name(path).rpartition(".")[0])
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from blockjob.x import y` may name a module y: count it as blockjob.x.y.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "blockjob"]


def _allowed(layer: str, target: str) -> bool:
    parts = target.split(".")[1:]
    if not parts or parts[0] not in ALLOWED:
        return False  # `import blockjob` or a name of the facade, which imports every layer
    rules = ALLOWED[layer]
    return parts[0] == layer or parts[0] in rules or ".".join(parts[:2]) in rules


def _violations(layer: str) -> list[str]:
    files = [PACKAGE / f"{layer}.py"] if (PACKAGE / f"{layer}.py").exists() else sorted(
        (PACKAGE / layer).rglob("*.py"))
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}"
            for path in files for line, target in _imports(path)
            if not _allowed(layer, target)]


def test_every_module_belongs_to_a_layer() -> None:
    layers = {_layer(path) for path in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert layers <= set(ALLOWED), f"add these to the layer table: {layers - set(ALLOWED)}"


@pytest.mark.parametrize("layer", [
    layer for layer in ALLOWED if (PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").exists()
])
def test_no_import_points_up(layer: str) -> None:
    assert _violations(layer) == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    assert _allowed("statusxml", "blockjob.model.BlockJob")
    assert _allowed("validation", "blockjob.statusxml.parse.parse")
    assert not _allowed("validation", "blockjob.statusxml.document.load")
    assert not _allowed("store", "blockjob.recovery.run")
    assert not _allowed("qemu", "blockjob.statusxml")
    assert not _allowed("statusxml", "blockjob.load")  # the facade pulls in everything
    assert not _allowed("model", "blockjob.statusxml.node.Node")
    source = tmp_path / "probe.py"
    source.write_text("import os\n\ndef f():\n    from blockjob.recovery import recover\n")
    assert _imports(source) == [(4, "blockjob.recovery.recover")]
