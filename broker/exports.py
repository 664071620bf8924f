"""A package's public names, imported from their modules when first used (PEP 562).

`from broker.envelope import Labels` should not load the opener, nor
`from broker.pep import Publisher` the subscriber: a one-shot verb pays for
every module it imports before its first object is sent. A package lists
where each name lives; type checkers read the same names from an
`if TYPE_CHECKING:` import block beside it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: name -> its value from module `where[name]`,
    kept in the package's `namespace` once imported."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
