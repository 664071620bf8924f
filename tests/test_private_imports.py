"""Private modules stay private: `pkg._module` is imported only from inside `pkg`.

What one package shares with another has a public name in its package; a
third party embedding the broker (docs/api.md) relies on the public names
alone, so nothing of ours may depend on another package's private module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("broker", "connectors")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _imported(tree: ast.Module, importer: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an import statement names (with `from a import b`, `a.b` too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def cross_package_private_imports(root: Path = ROOT) -> list[str]:
    """`file:line imports module` for each private module imported from outside its package."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            importer = _module_name(path, root)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in _imported(tree, importer, path.name == "__init__.py"):
                parts = name.split(".")
                if parts[0] not in PACKAGES:
                    continue
                for i, part in enumerate(parts):
                    if not _is_private(part):
                        continue
                    owner = ".".join(parts[:i])
                    # a private name of a module (`from a.b import _f`) is the module's own
                    # affair; a private module (`a._m`) belongs to package `a`
                    where = root / Path(*parts[:i], part)
                    is_module = where.with_suffix(".py").exists() or where.is_dir()
                    if is_module and importer != owner and not importer.startswith(f"{owner}."):
                        problem = (
                            f"{path.relative_to(root)}:{line} imports "
                            f"{'.'.join(parts[: i + 1])} (private to {owner})"
                        )
                        if problem not in problems:
                            problems.append(problem)
                    break
    return problems


def test_no_private_module_is_imported_across_packages() -> None:
    assert cross_package_private_imports() == []


def test_the_walk_finds_a_cross_package_private_import(tmp_path: Path) -> None:
    """The walk itself: a planted import of another package's private module is found,
    one of the package's own private module is not."""
    (tmp_path / "broker" / "kafka").mkdir(parents=True)
    (tmp_path / "broker" / "pep").mkdir()
    (tmp_path / "connectors").mkdir()
    (tmp_path / "broker" / "__init__.py").write_text("")
    (tmp_path / "broker" / "kafka" / "__init__.py").write_text("")
    (tmp_path / "broker" / "kafka" / "_wire.py").write_text("X = 1\n")
    (tmp_path / "broker" / "kafka" / "fetch.py").write_text(
        "from broker.kafka._wire import X\nfrom . import _wire\n"
    )
    (tmp_path / "broker" / "pep" / "__init__.py").write_text("")
    (tmp_path / "broker" / "pep" / "reader.py").write_text(
        "def f():\n    from broker.kafka import _wire\n    return _wire\n"
    )
    (tmp_path / "connectors" / "__init__.py").write_text("import broker.kafka._wire\n")
    problems = cross_package_private_imports(tmp_path)
    assert problems == [
        "broker/pep/reader.py:2 imports broker.kafka._wire (private to broker.kafka)",
        "connectors/__init__.py:1 imports broker.kafka._wire (private to broker.kafka)",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_ships_its_type_information(package: str) -> None:
    """PEP 561: embedding programs type-check against our hints only if `py.typed` ships."""
    assert (ROOT / package / "py.typed").is_file()
