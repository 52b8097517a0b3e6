"""Lazy package exports: a name is imported from its module on first access.

Importing a light module of a package (a ClientApp answering a secure-aggregation
query imports ``credit.records``) then does not import every export of the package,
torch and Opacus among them. Type checkers see the exports through
``if TYPE_CHECKING:`` imports in the package's ``__init__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``exports[name]`` and caches the value."""

    def resolve(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return resolve
