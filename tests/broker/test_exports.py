"""Packages whose public names are imported when first used (`broker.exports`)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

LAZY = ("broker", "broker.pep", "broker.envelope", "connectors.isac")


@pytest.mark.parametrize("name", LAZY)
def test_every_public_name_is_its_modules_object_even_after_every_submodule_loads(
    name: str,
) -> None:
    """A name that is also a submodule's would be shadowed by the submodule once it loads
    (the import system sets it on the package): each name must stay what its module says."""
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{name}."):
        importlib.import_module(info.name)
    for public in package.__all__:
        value = getattr(package, public)
        assert not isinstance(value, ModuleType), f"{name}.{public} is a module, not the name"
        if inspect.isclass(value) or inspect.isfunction(value):
            assert getattr(importlib.import_module(value.__module__), public) is value


@pytest.mark.parametrize("name", LAZY)
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    package = importlib.import_module(name)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        package.NoSuchThing  # noqa: B018
