"""The dataset contract every bank's file must meet, loaded from a TOML file.

A schema names the binary target, an optional id column, and each feature column
with *public* bounds (numeric) or levels (categorical). Public means agreed by the
consortium in advance, not measured on anybody's data: encoders may use them without
spending privacy budget. Protected attributes are validated like any column but are
not model inputs unless ``protected_as_features = true``; fairness reports group by
them (a numeric one by its public ``bands``).

A column may allow missing values (``missing = "allow"``; empty cells and NaN
spellings are kept as missing instead of refused) and a numeric column may declare
``special`` codes (e.g. 96, 98 for "unknown" in a count): both are valid values that
get their own bins in the model's inputs (see :mod:`credit.encoding`). ``description``
is the readable text of a column (reason codes quote it).

Example::

    name = "uci-default-credit-card"
    target = "default_payment_next_month"
    id = "ID"
    protected = ["SEX", "AGE"]

    [[numeric]]
    name = "LIMIT_BAL"
    description = "Amount of given credit (NT dollars)"
    min = 0
    max = 2_000_000
    transform = "asinh"
    missing = "allow"

    [[numeric]]
    name = "AGE"
    min = 18
    max = 100
    integer = true
    bands = [25, 35, 45, 55, 65]

    [[numeric]]
    name = "MONTHS_DELINQUENT"
    min = 0
    max = 99
    integer = true
    special = [96, 98]

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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from credit.config_files import first_problem
from credit.errors import SchemaError

__all__ = [
    "CategoricalFeature",
    "DatasetSchema",
    "MissingValues",
    "NumericFeature",
    "Transform",
    "UnexpectedColumns",
    "embedded_schema_path",
    "load_schema",
    "parse_schema",
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


class MissingValues(StrEnum):
    """What validation does with an empty cell (or a NaN spelling) in a feature column.

    ``refuse`` (the default) counts it as a violation; ``allow`` keeps it as a missing
    value, which the encoders give its own bin (binned) or indicator (standardised).
    """

    REFUSE = "refuse"
    ALLOW = "allow"


_NEW_KEY_DEFAULTS: dict[str, object] = {
    "description": None,
    "missing": MissingValues.REFUSE.value,
    "special": [],
    "bands": None,
}
"""Feature keys added after schema hashes were first published, with their defaults
(JSON form): left out of the canonical form when at their default, so the hash of a
schema that does not use them stays what it was."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _missing_mode(kind: str, value: object, info: ValidationInfo) -> object:
    """Refuse an unknown ``missing`` mode with a message naming the feature and the value."""
    allowed = [mode.value for mode in MissingValues]
    if value not in allowed:
        name = info.data.get("name", "?")
        raise ValueError(
            f"{kind} '{name}': missing must be one of {', '.join(map(repr, allowed))}; "
            f"got {value!r}"
        )
    return value


def _number(value: float) -> str:
    """A number as a schema writes it: ``96``, ``2000000``, ``0.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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
    description : str, optional
        Readable text of the column (reason codes quote it).
    missing : MissingValues, default ``refuse``
        ``allow`` keeps empty cells as missing values instead of refusing them.
    special : list of float, default none
        Special codes (e.g. 96, 98 for "unknown"): valid values that are not
        measurements. Each lies within ``[min, max]``, appears once and is a whole
        number when ``integer``. They get their own bins and are left out of the
        column's statistics.
    bands : list of float, optional
        Public interior band edges (raw units, strictly increasing, strictly inside
        the bounds) that group the column for fairness reports (e.g. age bands).
    """

    name: str
    min: float
    max: float
    transform: Transform = Transform.NONE
    integer: bool = False
    bins: tuple[float, ...] | None = None
    description: str | None = Field(default=None, min_length=1)
    missing: MissingValues = MissingValues.REFUSE
    special: tuple[float, ...] = ()
    bands: tuple[float, ...] | None = Field(default=None, min_length=1)

    @field_validator("missing", mode="before")
    @classmethod
    def _known_missing_mode(cls, value: object, info: ValidationInfo) -> object:
        return _missing_mode("numeric", value, info)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if not self.min < self.max:
            raise ValueError(
                f"numeric '{self.name}': min must be < max; got {self.min}, {self.max}"
            )
        if self.bins is not None and list(self.bins) != sorted(set(self.bins)):
            raise ValueError(f"numeric '{self.name}': bins must be strictly increasing")
        self._check_special()
        self._check_bands()
        return self

    def _check_special(self) -> None:
        where = f"numeric '{self.name}'"
        for code in self.special:
            if not self.min <= code <= self.max:
                raise ValueError(
                    f"{where}: special code {_number(code)} lies outside the bounds "
                    f"[{_number(self.min)}, {_number(self.max)}]"
                )
            if self.integer and not code.is_integer():
                raise ValueError(
                    f"{where}: special code {_number(code)} is not a whole number "
                    "(the column is integer)"
                )
        repeated = sorted({code for code in self.special if self.special.count(code) > 1})
        if repeated:
            raise ValueError(f"{where}: special code {_number(repeated[0])} is listed twice")

    def _check_bands(self) -> None:
        if self.bands is None:
            return
        where = f"numeric '{self.name}'"
        if list(self.bands) != sorted(set(self.bands)):
            raise ValueError(f"{where}: bands must be strictly increasing")
        outside = [edge for edge in self.bands if not self.min < edge < self.max]
        if outside:
            raise ValueError(
                f"{where}: band edge {_number(outside[0])} is not inside the bounds "
                f"({_number(self.min)}, {_number(self.max)})"
            )

    @property
    def allows_missing(self) -> bool:
        """Whether empty cells are valid (kept as missing values)."""
        return self.missing is MissingValues.ALLOW


class CategoricalFeature(_Frozen):
    """A categorical column with its public list of levels (integers or strings).

    Parameters
    ----------
    name : str
        Column name in the CSV header.
    levels : list of int or list of str
        The declared levels; any other value fails validation.
    description : str, optional
        Readable text of the column (reason codes quote it).
    missing : MissingValues, default ``refuse``
        ``allow`` keeps empty cells as missing values instead of refusing them.
    """

    name: str
    levels: tuple[int, ...] | tuple[str, ...] = Field(min_length=1)
    description: str | None = Field(default=None, min_length=1)
    missing: MissingValues = MissingValues.REFUSE

    @field_validator("missing", mode="before")
    @classmethod
    def _known_missing_mode(cls, value: object, info: ValidationInfo) -> object:
        return _missing_mode("categorical", value, info)

    @property
    def allows_missing(self) -> bool:
        """Whether empty cells are valid (kept as missing values)."""
        return self.missing is MissingValues.ALLOW

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
        """SHA-256 of the canonical JSON form: equal hashes mean the same contract.

        Feature keys added later (``description``, ``missing``, ``special``,
        ``bands``) enter the canonical form only when they differ from their default,
        so a schema that does not use them keeps the hash it always had.
        """
        document = self.model_dump(mode="json", by_alias=True)
        for entry in (*document["numeric"], *document["categorical"]):
            for key, default in _NEW_KEY_DEFAULTS.items():
                if key in entry and entry[key] == default:
                    del entry[key]
        canonical = json.dumps(document, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def feature(self, name: str) -> NumericFeature | CategoricalFeature:
        """The declared feature called ``name``.

        Raises
        ------
        KeyError
            No feature of that name.
        """
        features: tuple[NumericFeature | CategoricalFeature, ...] = (
            *self.numeric,
            *self.categorical,
        )
        for feature in features:
            if feature.name == name:
                return feature
        raise KeyError(f"no feature '{name}' in schema '{self.name}'")


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
        data = schema_path.read_bytes()
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
    return parse_schema(data, source=schema_path)


def parse_schema(data: bytes, *, source: Path | str) -> DatasetSchema:
    """Parse and validate a dataset schema from a TOML file's bytes.

    Parameters
    ----------
    data : bytes
        The file's bytes (UTF-8 TOML).
    source : pathlib.Path or str
        Where the bytes come from, for error messages.

    Raises
    ------
    SchemaError
        Not UTF-8 TOML, or the schema rules are broken; the message names ``source``
        and the first offending key.
    """
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"not valid TOML: {exc}", file=source, hint="fix the syntax") from exc
    try:
        return DatasetSchema.model_validate(raw)
    except ValidationError as exc:
        raise SchemaError(
            f"invalid schema at {first_problem(exc)}",
            file=source,
            hint="see the schema format in README.md",
        ) from exc
