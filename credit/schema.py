"""The dataset contract every bank's file must meet, loaded from a TOML file.

A schema names the binary target, an optional id column, and each feature column
with *public* bounds (numeric) or levels (categorical). Public means agreed by the
consortium in advance, not measured on anybody's data: encoders may use them without
spending privacy budget. Protected attributes are validated like any column but are
not model inputs unless ``protected_as_features = true``; fairness reports group by
them.

Example::

    name = "uci-default-credit-card"
    target = "default_payment_next_month"
    id = "ID"
    protected = ["SEX", "AGE"]

    [[numeric]]
    name = "LIMIT_BAL"
    min = 0
    max = 2_000_000
    transform = "asinh"

    [[categorical]]
    name = "SEX"
    levels = [1, 2]
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from credit.config_files import first_problem
from credit.errors import SchemaError

__all__ = [
    "CategoricalFeature",
    "DatasetSchema",
    "NumericFeature",
    "Transform",
    "UnexpectedColumns",
    "embedded_schema_path",
    "load_schema",
]


class UnexpectedColumns(StrEnum):
    """What validation does with a column the schema does not declare."""

    ERROR = "error"
    WARN = "warn"


class Transform(StrEnum):
    """A fixed, data-independent transform applied to a numeric column before encoding.

    ``asinh`` behaves like a signed logarithm: it tames heavy-tailed money amounts
    (bills, payments, limits) and is defined for negative values.
    """

    NONE = "none"
    ASINH = "asinh"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class NumericFeature(_Frozen):
    """A numeric column with public bounds.

    Parameters
    ----------
    name : str
        Column name in the CSV header.
    min, max : float
        Public bounds, inclusive. A value outside them fails validation.
    transform : Transform, default ``none``
        Fixed transform applied before binning or standardising.
    integer : bool, default False
        Whether values must be whole numbers.
    bins : list of float, optional
        Public interior bin edges (raw units) for ``--feature-stats public``; when
        absent, public bins are equal-width in transformed space.
    """

    name: str
    min: float
    max: float
    transform: Transform = Transform.NONE
    integer: bool = False
    bins: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if not self.min < self.max:
            raise ValueError(
                f"numeric '{self.name}': min must be < max; got {self.min}, {self.max}"
            )
        if self.bins is not None and list(self.bins) != sorted(set(self.bins)):
            raise ValueError(f"numeric '{self.name}': bins must be strictly increasing")
        return self


class CategoricalFeature(_Frozen):
    """A categorical column with its public list of levels (integers or strings)."""

    name: str
    levels: tuple[int, ...] | tuple[str, ...] = Field(min_length=1)

    @property
    def is_integer(self) -> bool:
        """Whether the levels are integer codes (the column is parsed as numbers)."""
        return all(isinstance(level, int) for level in self.levels)


class DatasetSchema(_Frozen):
    """The dataset contract: target, id, features with public bounds, protected columns."""

    name: str
    target: str
    id_column: str | None = Field(default=None, alias="id")
    numeric: tuple[NumericFeature, ...] = ()
    categorical: tuple[CategoricalFeature, ...] = ()
    protected: tuple[str, ...] = ()
    protected_as_features: bool = False
    unexpected_columns: UnexpectedColumns = UnexpectedColumns.ERROR
    min_rows: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _names_consistent(self) -> Self:
        names = [f.name for f in self.numeric] + [f.name for f in self.categorical]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature declared twice: {', '.join(duplicated)}")
        if self.target in names or self.target == self.id_column:
            raise ValueError(f"target '{self.target}' must not also be a feature or the id")
        unknown = [p for p in self.protected if p not in names]
        if unknown:
            raise ValueError(f"protected column(s) not declared as features: {', '.join(unknown)}")
        if not self.input_features:
            raise ValueError("no model inputs: declare at least one unprotected feature")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """Every declared column: id (if any), features, then the target."""
        head = (self.id_column,) if self.id_column else ()
        features = tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)
        return (*head, *features, self.target)

    @property
    def input_features(self) -> tuple[str, ...]:
        """Feature columns the model sees (protected ones only if explicitly allowed)."""
        names = [f.name for f in self.numeric] + [f.name for f in self.categorical]
        if self.protected_as_features:
            return tuple(names)
        return tuple(n for n in names if n not in self.protected)

    def schema_hash(self) -> str:
        """SHA-256 of the canonical JSON form: equal hashes mean the same contract."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def embedded_schema_path() -> Path:
    """Path of the schema shipped for the embedded UCI credit-card data set."""
    return Path(str(importlib.resources.files("credit") / "schemas" / "uci_default.toml"))


def load_schema(path: Path | str | None = None) -> DatasetSchema:
    """Load and validate a dataset schema from TOML.

    Parameters
    ----------
    path : pathlib.Path or str, optional
        The schema file; the embedded data set's schema when omitted.

    Raises
    ------
    SchemaError
        The file is missing, is not TOML, or breaks the schema rules; the message
        names the file and the first offending key.
    """
    schema_path = Path(path) if path else embedded_schema_path()
    try:
        raw = tomllib.loads(schema_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SchemaError(
            "schema file not found", file=schema_path, hint="pass an existing file to --schema"
        ) from exc
    except OSError as exc:  # a directory, no permission, ...
        raise SchemaError(
            f"cannot read schema file ({exc.strerror or exc})",
            file=schema_path,
            hint="pass a readable TOML file to --schema",
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(
            f"not valid TOML: {exc}", file=schema_path, hint="fix the syntax"
        ) from exc
    try:
        return DatasetSchema.model_validate(raw)
    except ValidationError as exc:
        raise SchemaError(
            f"invalid schema at {first_problem(exc)}",
            file=schema_path,
            hint="see the schema format in README.md",
        ) from exc
