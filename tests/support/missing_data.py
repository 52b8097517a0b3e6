"""A blanked variant of the embedded data set and a schema that allows what it holds.

Derived in the tests (nothing stored): from the embedded rows, 20 % of ``LIMIT_BAL``
blanked at random, 10 % of ``PAY_2`` blanked at random, and some ``PAY_AMT1`` values
set to the special codes 96 and 98 (which the embedded ``PAY_AMT1`` never holds). The
schema is the embedded one with ``missing = "allow"`` on ``LIMIT_BAL`` and ``PAY_2``
and ``special = [96, 98]`` on ``PAY_AMT1``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from credit.schema import embedded_schema_path

__all__ = [
    "BLANKED_SHARE",
    "SPECIAL_CODES",
    "Blanked",
    "blanked_frame",
    "blanked_schema_document",
    "write_blanked",
]

BLANKED_SHARE = 0.2
"""Share of ``LIMIT_BAL`` blanked."""
CATEGORICAL_BLANKED_SHARE = 0.1
"""Share of ``PAY_2`` blanked."""
SPECIAL_CODES = (96, 98)
SPECIAL_SHARES = (0.05, 0.03)
"""Share of ``PAY_AMT1`` set to each special code."""


@dataclass(frozen=True)
class Blanked:
    """A written blanked file, its schema file, and where the blanks and codes are."""

    data: Path
    schema: Path
    frame: pd.DataFrame
    missing_limit: np.ndarray
    missing_pay_2: np.ndarray
    special: dict[int, np.ndarray]


def blanked_schema_document() -> dict[str, Any]:
    """The embedded schema with missing values allowed and special codes declared."""
    document = tomllib.loads(embedded_schema_path().read_text(encoding="utf-8"))
    document["name"] = "uci-default-blanked"
    for entry in document["numeric"]:
        if entry["name"] == "LIMIT_BAL":
            entry["missing"] = "allow"
        if entry["name"] == "PAY_AMT1":
            entry["special"] = list(SPECIAL_CODES)
    for entry in document["categorical"]:
        if entry["name"] == "PAY_2":
            entry["missing"] = "allow"
    return document


def blanked_frame(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``frame`` (raw embedded rows) blanked and coded; the masks of what was changed."""
    rng = np.random.default_rng(seed)
    blanked = frame.astype({"LIMIT_BAL": float, "PAY_2": float, "PAY_AMT1": float})
    n_rows = len(frame)
    missing_limit = rng.random(n_rows) < BLANKED_SHARE
    missing_pay_2 = rng.random(n_rows) < CATEGORICAL_BLANKED_SHARE
    draw = rng.random(n_rows)
    special = {
        SPECIAL_CODES[0]: draw < SPECIAL_SHARES[0],
        SPECIAL_CODES[1]: (draw >= SPECIAL_SHARES[0]) & (draw < sum(SPECIAL_SHARES)),
    }
    blanked.loc[missing_limit, "LIMIT_BAL"] = np.nan
    blanked.loc[missing_pay_2, "PAY_2"] = np.nan
    for code, rows in special.items():
        blanked.loc[rows, "PAY_AMT1"] = float(code)
    masks = {"missing_limit": missing_limit, "missing_pay_2": missing_pay_2, "special": special}
    return blanked, masks


def write_blanked(folder: Path, frame: pd.DataFrame, n_rows: int | None = None) -> Blanked:
    """Write the blanked first ``n_rows`` rows of ``frame`` and the schema that allows them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = frame if n_rows is None else frame.iloc[:n_rows].reset_index(drop=True)
    blanked, masks = blanked_frame(rows)
    data = folder / "blanked.csv"
    blanked.to_csv(data, index=False)  # NaN is written as an empty cell
    schema = folder / "blanked.toml"
    schema.write_text(tomli_w.dumps(blanked_schema_document()), encoding="utf-8")
    return Blanked(data=data, schema=schema, frame=blanked, **masks)
