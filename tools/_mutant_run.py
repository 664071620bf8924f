"""Run pytest with one module replaced by one of its mutants (a child of tools.mutation).

    python -m tools._mutant_run MODULE_PATH INDEX -- PYTEST_ARGS...

The mutated module is imported in place of the real one (a meta path finder placed
before the editable install's), so the working tree is never written. INDEX -1 runs
the unmutated module through the same path: the baseline.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import CodeType, ModuleType

import pytest

from tools._mutants import mutated


class _Loader(importlib.abc.Loader):
    def __init__(self, code: CodeType) -> None:
        self._code = code

    def exec_module(self, module: ModuleType) -> None:
        exec(self._code, module.__dict__)  # noqa: S102 - the mutant under test, our own code


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, path: Path, code: CodeType) -> None:
        self._name, self._path, self._code = name, path, code
        self.used = False

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._name:
            return None
        self.used = True
        spec = importlib.util.spec_from_loader(
            fullname, _Loader(self._code), origin=str(self._path)
        )
        assert spec is not None
        spec.has_location = True
        return spec


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").parts)


def main(argv: list[str]) -> int:
    target, index, sep, *pytest_args = argv
    assert sep == "--", "usage: MODULE_PATH INDEX -- PYTEST_ARGS..."
    path = Path(target)
    if int(index) >= 0:
        code = compile(mutated(path, int(index)), str(path.resolve()), "exec")
    else:
        code = compile(path.read_text(), str(path.resolve()), "exec")
    finder = _Finder(module_name(path), path.resolve(), code)
    sys.meta_path.insert(0, finder)
    status = int(pytest.main(pytest_args))
    if not finder.used:
        print(f"mutation: {module_name(path)} was never imported", file=sys.stderr)
        return 4
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
