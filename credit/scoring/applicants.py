"""Applicant rows checked against a package's schema, every violation counted.

An applicant file is a bank's file without the outcome: the model's input features
are required; the id column, the schema's other (protected) features are checked
when present; the target is ignored when present (it is not known yet); a column the
schema does not declare follows its ``unexpected_columns`` rule. The cell checks are
:mod:`credit.validation`'s, as ``fedcredit participant check`` runs them.

A large file is checked chunk by chunk (:class:`ApplicantTally`): each chunk's
violations are added up per column and kind of problem (their hint) with the file's
row numbers, and the ids are checked for duplicates across the whole file at the
end, so the report is the one the whole file at once would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from credit.loading import BankData, CheckedFile, check_cells, check_columns
from credit.schema import DatasetSchema
from credit.validation import (
    MAX_ROWS_SHOWN,
    CheckedColumn,
    ColumnViolation,
    ValidationReport,
    check_ids,
)

__all__ = ["ApplicantTally", "check_applicants"]


def check_applicants(
    raw: pd.DataFrame, schema: DatasetSchema, *, source: Path | str
) -> CheckedFile:
    """Check a frame of applicant cells (strings) against the schema.

    Parameters
    ----------
    raw : pandas.DataFrame
        Every cell a string, as read from a CSV file (``dtype=str``,
        ``keep_default_na=False``).
    schema : DatasetSchema
        The package's schema.
    source : pathlib.Path or str
        The file (or request) the rows come from, for the report.

    Returns
    -------
    CheckedFile
        Every violation; the typed rows (schema order, no target) when there is none.
    """
    tally = ApplicantTally(schema, source=source, columns=list(raw.columns))
    typed = tally.add(raw)
    report = tally.report()
    if not report.ok:
        return CheckedFile(report, None)
    return CheckedFile(report, BankData(frame=typed, source=Path(source), warnings=report.warnings))


class ApplicantTally:
    """Every violation of an applicant file read in chunks (module docstring).

    Parameters
    ----------
    schema : DatasetSchema
        The package's schema.
    source : pathlib.Path or str
        The file, for the report.
    columns : sequence of str
        The file's header.
    """

    def __init__(
        self, schema: DatasetSchema, *, source: Path | str, columns: Sequence[str]
    ) -> None:
        self._schema = schema
        self._source = Path(source)
        header, warnings = check_columns(
            columns, schema, self._source, required=schema.input_features
        )
        self._header = header
        self._warnings = warnings
        self._columns = {name: k for k, name in enumerate(schema.columns)}
        self._found: dict[tuple[str | None, str], ColumnViolation] = {}
        self._ids: list[pd.Series] = []
        self._rows = 0

    @property
    def ok(self) -> bool:
        """Whether no violation was found so far (the ids are checked at the end)."""
        return not self._header and not self._found

    @property
    def rows(self) -> int:
        """Data rows added so far."""
        return self._rows

    def add(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Check the next chunk; return its typed rows (meaningless if :attr:`ok` is False)."""
        checked = check_cells(raw, self._schema, ids=False, target=False)
        for column in checked.values():
            for violation in column.violations:
                self._count(violation, self._rows)
        id_column = self._schema.id_column
        if id_column and id_column in raw:
            self._ids.append(raw[id_column])
        self._rows += len(raw)
        return _typed(checked, self._schema, raw)

    def report(self) -> ValidationReport:
        """Every violation so far, with the ids checked across every chunk."""
        found = dict(self._found)
        if self._ids:
            id_column = str(self._schema.id_column)
            ids = pd.concat(self._ids, ignore_index=True)
            for violation in check_ids(ids, id_column).violations:
                found[(violation.column, violation.hint)] = violation
        ordered = sorted(
            found.values(), key=lambda v: (self._columns.get(str(v.column), -1), v.rows[0])
        )
        return ValidationReport(self._source, (*self._header, *ordered), tuple(self._warnings))

    def _count(self, violation: ColumnViolation, offset: int) -> None:
        rows = tuple(row + offset for row in violation.rows)
        key = (violation.column, violation.hint)
        earlier = self._found.get(key)
        if earlier is None:
            self._found[key] = ColumnViolation(
                violation.column, violation.problem, violation.count, rows, violation.hint
            )
            return
        self._found[key] = ColumnViolation(
            earlier.column,
            earlier.problem,
            earlier.count + violation.count,
            (*earlier.rows, *rows)[:MAX_ROWS_SHOWN],
            earlier.hint,
        )


def _typed(
    checked: dict[str, CheckedColumn], schema: DatasetSchema, raw: pd.DataFrame
) -> pd.DataFrame:
    """The checked columns as one frame in schema order (the id as its strings)."""
    values = {name: column.values for name, column in checked.items()}
    if schema.id_column and schema.id_column in raw:
        values[schema.id_column] = raw[schema.id_column].str.strip()
    order = [name for name in schema.columns if name in values]
    return pd.DataFrame(values, columns=order)
