"""Cell checks of a bank's columns that count every violation instead of stopping.

Each column of a bank's file is checked on its own: every kind of problem (missing
value, non-number, out of bounds, unknown level, ...) becomes one
:class:`ColumnViolation` with its count, its first rows (1-based data rows; the
header is row 0) and a hint. A :class:`ValidationReport` gathers them for the whole
file: :func:`credit.loading.load_bank_csv` raises its one-line
:meth:`~ValidationReport.error`, ``fedcredit participant check`` prints every row.

Missing values are valid in a column whose schema entry says ``missing = "allow"``
and are kept as NaN (see :class:`credit.loading.BankData`); a numeric column's
special codes are ordinary valid values here (the schema keeps them within bounds).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.errors import SchemaError
from credit.schema import CategoricalFeature, NumericFeature

__all__ = [
    "MAX_ROWS_SHOWN",
    "CheckedColumn",
    "ColumnViolation",
    "ValidationReport",
    "check_categorical",
    "check_ids",
    "check_numeric",
    "check_target",
]

MAX_ROWS_SHOWN = 5
"""How many offending rows a violation names."""

NAN_SPELLINGS = frozenset({"", "nan", "na", "n/a", "null", "none", "-nan"})
"""Cell texts (case-insensitive, stripped) read as a missing value."""
_INF_SPELLINGS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_MISSING_HINT = (
    "fill or drop incomplete records, or have the consortium declare "
    'missing = "allow" for this column'
)


@dataclass(frozen=True)
class ColumnViolation:
    """One kind of problem in one column, with how often and where it occurs.

    Attributes
    ----------
    column : str or None
        The column; None for a problem of the whole file (too few rows).
    problem : str
        What is wrong, quoting the first offending cell, e.g. ``"non-numeric value
        'abc'"``.
    count : int
        Offending cells (1 for a problem of the header).
    rows : tuple of int
        The first :data:`MAX_ROWS_SHOWN` offending rows, 1-based (0: the header);
        empty for a problem of the whole file.
    hint : str
        What to do about it.
    """

    column: str | None
    problem: str
    count: int
    rows: tuple[int, ...]
    hint: str

    @property
    def rows_text(self) -> str:
        """The rows as a reader sees them: ``header``, ``5, 12, 30, …`` or ``-``."""
        if not self.rows:
            return "-"
        if self.rows == (0,):
            return "header"
        more = ", …" if self.count > len(self.rows) else ""
        return ", ".join(str(row) for row in self.rows) + more


@dataclass(frozen=True)
class ValidationReport:
    """Every violation found in one bank file, in reading order.

    Attributes
    ----------
    source : pathlib.Path
        The file.
    violations : tuple of ColumnViolation
        Header problems first, then column by column in schema order (each column's
        problems by their first row), then problems of the whole file.
    warnings : tuple of str
        Non-fatal findings (unexpected columns under ``unexpected_columns = "warn"``).
    """

    source: Path
    violations: tuple[ColumnViolation, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the file meets the schema."""
        return not self.violations

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns with at least one violation, in report order."""
        named = (v.column for v in self.violations if v.column is not None)
        return tuple(dict.fromkeys(named))

    def summary(self) -> str:
        """How many problems in how many columns, as one clause (no file name)."""
        problems = len(self.violations)
        columns = len(self.columns)
        text = f"{problems} problem{'s' if problems != 1 else ''} in {columns} "
        text += "column" if columns == 1 else "columns"
        if any(v.column is None for v in self.violations):
            text += " and the file as a whole"
        return text + "; fix the file and check it again"

    def error(self) -> SchemaError:
        """The first violation as one line, with its count, first rows and what lists all.

        Raises
        ------
        ValueError
            The report holds no violation.
        """
        if not self.violations:
            raise ValueError(f"{self.source} has no violation to report")
        first = self.violations[0]
        problem = first.problem
        if first.rows and first.rows != (0,):
            problem += f" in {first.count} row{'s' if first.count > 1 else ''} ({first.rows_text})"
        others = len(self.violations) - 1
        listing = f"`fedcredit participant check {shlex.quote(str(self.source))}` lists every"
        listing += f" problem ({others} more)" if others else " problem"
        return SchemaError(
            problem,
            file=self.source,
            column=first.column,
            row=first.rows[0] if first.rows else None,
            hint=f"{first.hint}; {listing}",
        )


@dataclass(frozen=True)
class CheckedColumn:
    """A column's typed values and its violations (the values mean nothing if any)."""

    values: pd.Series
    violations: tuple[ColumnViolation, ...]


@dataclass(frozen=True)
class _Check:
    """A boolean mask of offending rows, the problem at a row (0-based), and the hint."""

    mask: NDArray[np.bool_]
    problem: Callable[[int], str]
    hint: str


def _violations(checks: list[_Check], column: str) -> tuple[ColumnViolation, ...]:
    """One violation per check that flags a row, ordered by first row (ties: check order)."""
    found = []
    for check in checks:
        rows = np.flatnonzero(check.mask)
        if rows.size:
            shown = tuple(int(row) + 1 for row in rows[:MAX_ROWS_SHOWN])
            problem = check.problem(int(rows[0]))
            found.append(ColumnViolation(column, problem, int(rows.size), shown, check.hint))
    return tuple(sorted(found, key=lambda violation: violation.rows[0]))


def _shown(values: pd.Series, row: int) -> str:
    return str(values.iloc[row]).strip()


def _missing_cells(values: pd.Series) -> NDArray[np.bool_]:
    """Which cells spell a missing value (empty, ``NaN``, ``NA``, ``null``, ...)."""
    mask: NDArray[np.bool_] = values.str.strip().str.lower().isin(NAN_SPELLINGS).to_numpy()
    return mask


def _parse_numbers(values: pd.Series, *, allow_missing: bool) -> tuple[pd.Series, list[_Check]]:
    """Parse strings to float64 (NaN where unusable) and list the parse problems.

    Plain numbers parse in one vectorised pass; only the cells that do not (missing
    spellings, infinities, padding, text) go through the string checks.
    """
    numbers = _as_floats(pd.to_numeric(values, errors="coerce"))
    unsure = ~np.isfinite(numbers)
    missing = np.zeros(len(values), dtype=bool)
    infinite = np.zeros(len(values), dtype=bool)
    if unsure.any():
        text = values[unsure].str.strip()
        lowered = text.str.lower()
        missing[unsure] = lowered.isin(NAN_SPELLINGS).to_numpy()
        infinite[unsure] = lowered.isin(_INF_SPELLINGS).to_numpy()
        spelled = missing[unsure] | infinite[unsure]
        numbers[unsure] = _as_floats(pd.to_numeric(text.where(~spelled, ""), errors="coerce"))
    finite = np.isfinite(numbers)
    checks = [
        _Check(
            infinite,
            lambda row: f"infinite value '{values.iloc[row]}'",
            "replace it with a finite value within the schema's bounds",
        ),
        _Check(
            ~(missing | infinite | finite),
            lambda row: f"non-numeric value '{values.iloc[row]}'",
            "numeric columns take plain numbers such as 1250 or -3.5",
        ),
    ]
    if not allow_missing:
        refused = _Check(
            missing, lambda row: f"missing value (NaN) '{values.iloc[row]}'", _MISSING_HINT
        )
        checks.insert(0, refused)
    parsed = pd.Series(np.where(finite, numbers, np.nan), index=values.index, dtype="float64")
    return parsed, checks


def _as_floats(numbers: pd.Series) -> NDArray[np.float64]:
    """A parsed column as a writable float64 array, NaN where it did not parse."""
    return np.array(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def check_numeric(values: pd.Series, feature: NumericFeature) -> CheckedColumn:
    """Check a numeric column: float64 values, NaN where missing (when allowed)."""
    numbers, checks = _parse_numbers(values, allow_missing=feature.allows_missing)
    array = numbers.to_numpy()
    usable = np.isfinite(array)
    if feature.integer:
        checks.append(
            _Check(
                usable & (array != np.round(array)),
                lambda row: f"value '{_shown(values, row)}' is not a whole number",
                "the schema declares this column integer",
            )
        )
    checks.append(
        _Check(
            usable & ((array < feature.min) | (array > feature.max)),
            lambda row: (
                f"value '{_shown(values, row)}' outside the declared bounds "
                f"[{feature.min:.15g}, {feature.max:.15g}]"
            ),
            "correct the record, or agree wider public bounds in the schema",
        )
    )
    return CheckedColumn(numbers, _violations(checks, feature.name))


def check_categorical(values: pd.Series, feature: CategoricalFeature) -> CheckedColumn:
    """Check a categorical column against its declared levels.

    Integer levels give int64 values, or float64 with NaN for missing values when the
    column allows them (``1.0 == 1``, so the levels still compare equal); string
    levels give strings, NaN for missing values. A cell that spells a missing value
    but is itself a declared level (a level ``"NA"``) is that level.
    """
    levels = ", ".join(str(level) for level in feature.levels)
    if feature.is_integer:
        numbers, checks = _parse_numbers(values, allow_missing=feature.allows_missing)
        array = numbers.to_numpy()
        unknown = np.isfinite(array) & ~np.isin(array, np.asarray(feature.levels, dtype=float))
        typed: pd.Series = numbers
    else:
        parsed = values.str.strip()
        declared = parsed.isin(feature.levels).to_numpy()
        missing = _missing_cells(values) & ~declared
        unknown = ~declared & ~missing
        checks = []
        if not feature.allows_missing:
            checks.append(
                _Check(
                    missing, lambda row: f"missing value (NaN) '{values.iloc[row]}'", _MISSING_HINT
                )
            )
        typed = parsed.where(~missing, np.nan)
    checks.append(
        _Check(
            unknown,
            lambda row: f"unknown category level '{values.iloc[row]}'; declared levels: {levels}",
            "map it to a declared level, or add the level to the schema",
        )
    )
    violations = _violations(checks, feature.name)
    if feature.is_integer and not feature.allows_missing and not violations:
        typed = typed.astype("int64")
    return CheckedColumn(typed, violations)


def check_target(values: pd.Series, column: str) -> CheckedColumn:
    """Check the binary target (never missing): int64 values in {0, 1}."""
    numbers, checks = _parse_numbers(values, allow_missing=False)
    array = numbers.to_numpy()
    checks.append(
        _Check(
            np.isfinite(array) & ~np.isin(array, [0.0, 1.0]),
            lambda row: f"non-binary target value '{values.iloc[row]}'",
            "the target must be 0 (repaid) or 1 (defaulted)",
        )
    )
    violations = _violations(checks, column)
    return CheckedColumn(numbers if violations else numbers.astype("int64"), violations)


def check_ids(values: pd.Series, column: str) -> CheckedColumn:
    """Check the id column: no empty id, no id twice."""
    ids = values.str.strip()
    empty = (ids == "").to_numpy()
    duplicated = (ids.duplicated() & (ids != "")).to_numpy()

    def duplicate(row: int) -> str:
        first_seen = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        return f"duplicate id '{ids.iloc[row]}' (first seen at row {first_seen + 1})"

    checks = [
        _Check(empty, lambda row: "empty id", "every record needs an id"),
        _Check(
            duplicated, duplicate, "each customer record must appear once; deduplicate the export"
        ),
    ]
    return CheckedColumn(ids, _violations(checks, column))
