"""Dataset schema: the embedded contract, its hash, and SchemaErrors for bad schema files."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from credit.errors import SchemaError
from credit.schema import (
    DatasetSchema,
    MissingValues,
    UnexpectedColumns,
    embedded_schema_path,
    load_schema,
)

PROTECTED = {"SEX", "EDUCATION", "MARRIAGE", "AGE"}
Document = dict[str, Any]
HASH_BEFORE_ISSUE_14 = "6d67030b6709d8a2a84aaeeb531374863c09d84269b7a7618bcc885cffbda5a6"
"""The embedded schema's hash before it gained descriptions and age bands."""


@pytest.fixture(scope="module")
def embedded_document() -> Document:
    """The embedded schema file parsed as a plain TOML document."""
    return tomllib.loads(embedded_schema_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, document: Document, name: str = "schema.toml") -> Path:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


def _edited(document: Document, edit: Callable[[Document], None]) -> Document:
    changed = copy.deepcopy(document)
    edit(changed)
    return changed


def _numeric(document: Document, name: str) -> dict[str, Any]:
    return next(f for f in document["numeric"] if f["name"] == name)


def _categorical(document: Document, name: str) -> dict[str, Any]:
    return next(f for f in document["categorical"] if f["name"] == name)


def _without_new_keys(document: Document) -> None:
    """Drop the keys issue 14 added to the embedded schema (descriptions, age bands)."""
    for entry in (*document["numeric"], *document["categorical"]):
        entry.pop("description", None)
        entry.pop("bands", None)


# --- the embedded schema ---------------------------------------------------------------


def test_embedded_schema_loads() -> None:
    schema = load_schema()

    assert schema.name == "uci-default-credit-card"
    assert schema.target == "default_payment_next_month"
    assert schema.id_column == "ID"
    assert schema.unexpected_columns is UnexpectedColumns.ERROR
    assert schema.min_rows == 50
    assert set(schema.protected) == PROTECTED
    assert len(schema.numeric) == 14
    assert len(schema.categorical) == 9
    assert schema.columns[0] == "ID"
    assert schema.columns[-1] == schema.target
    assert len(schema.columns) == 25
    age = next(f for f in schema.numeric if f.name == "AGE")
    assert (age.min, age.max, age.integer) == (18, 100, True)
    assert age.bands == (25, 35, 45, 55, 65)
    for feature in (*schema.numeric, *schema.categorical):
        assert feature.description, feature.name
        assert feature.missing is MissingValues.REFUSE and not feature.allows_missing
    assert all(feature.special == () for feature in schema.numeric)
    assert schema.feature("PAY_0").description == "Repayment status, September 2005"


def test_embedded_schema_same_as_explicit_path() -> None:
    assert load_schema(embedded_schema_path()) == load_schema()
    assert load_schema(str(embedded_schema_path())) == load_schema()


def test_input_features_exclude_protected_columns(schema: DatasetSchema) -> None:
    features = set(schema.input_features)

    assert features.isdisjoint(PROTECTED)
    assert schema.target not in features
    assert schema.id_column not in features
    assert {"LIMIT_BAL", "PAY_0", "BILL_AMT1", "PAY_AMT6"} <= features
    assert len(schema.input_features) == 14 + 9 - len(PROTECTED)


def test_protected_as_features_includes_protected_columns(
    schema: DatasetSchema, embedded_document: Document, tmp_path: Path
) -> None:
    copied = schema.model_copy(update={"protected_as_features": True})
    document = _edited(embedded_document, lambda d: d.update(protected_as_features=True))
    loaded = load_schema(_write(tmp_path, document))

    for allowed in (copied, loaded):
        assert set(allowed.input_features) >= PROTECTED
        assert len(allowed.input_features) == 14 + 9
        assert set(allowed.input_features) == set(schema.columns) - {"ID", schema.target}


# --- schema hash -----------------------------------------------------------------------


def test_schema_hash_is_stable(
    schema: DatasetSchema, embedded_document: Document, tmp_path: Path
) -> None:
    digest = schema.schema_hash()

    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert load_schema().schema_hash() == digest
    assert schema.schema_hash() == digest
    # Same contract, different file: no comments, other key order, other number spelling.
    reordered = dict(reversed(list(embedded_document.items())))
    assert load_schema(_write(tmp_path, reordered)).schema_hash() == digest


def test_a_schema_without_the_new_keys_keeps_its_hash(
    embedded_document: Document, tmp_path: Path
) -> None:
    """The new feature keys enter the hash only when used: an older schema's hash stands."""
    document = _edited(embedded_document, _without_new_keys)
    assert load_schema(_write(tmp_path, document)).schema_hash() == HASH_BEFORE_ISSUE_14

    def explicit_defaults(d: Document) -> None:
        _without_new_keys(d)
        _numeric(d, "AGE").update(missing="refuse", special=[])
        _categorical(d, "SEX").update(missing="refuse")

    spelled_out = _edited(embedded_document, explicit_defaults)
    assert load_schema(_write(tmp_path, spelled_out)).schema_hash() == HASH_BEFORE_ISSUE_14


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: _numeric(d, "LIMIT_BAL").update(missing="allow"),
        lambda d: _categorical(d, "PAY_0").update(missing="allow"),
        lambda d: _numeric(d, "PAY_AMT1").update(special=[96]),
        lambda d: _numeric(d, "AGE").update(bands=[30, 60]),
        lambda d: _numeric(d, "AGE").update(description="Age in whole years"),
    ],
    ids=["numeric-missing", "categorical-missing", "special", "bands", "description"],
)
def test_the_new_keys_change_the_hash(
    schema: DatasetSchema,
    embedded_document: Document,
    tmp_path: Path,
    edit: Callable[[Document], None],
) -> None:
    changed = load_schema(_write(tmp_path, _edited(embedded_document, edit)))

    assert changed.schema_hash() != schema.schema_hash()


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(min_rows=51),
        lambda d: d.update(name="another-consortium"),
        lambda d: d.update(protected=["SEX", "AGE"]),
        lambda d: d.update(unexpected_columns="warn"),
        lambda d: _numeric(d, "AGE").update(max=99),
        lambda d: _numeric(d, "LIMIT_BAL").update(transform="none"),
        lambda d: d["categorical"][1].update(levels=[1, 2, 3, 4]),
    ],
    ids=["min_rows", "name", "protected", "unexpected", "bound", "transform", "levels"],
)
def test_schema_hash_changes_with_the_contract(
    schema: DatasetSchema,
    embedded_document: Document,
    tmp_path: Path,
    edit: Callable[[Document], None],
) -> None:
    changed = load_schema(_write(tmp_path, _edited(embedded_document, edit)))

    assert changed.schema_hash() != schema.schema_hash()


# --- bad schema files ------------------------------------------------------------------


def _schema_error(path: Path, match: str) -> SchemaError:
    with pytest.raises(SchemaError, match=match) as info:
        load_schema(path)
    error = info.value
    assert error.file == str(path)
    assert str(error).startswith(f"{path}: ")
    assert "\n" not in str(error)
    return error


def test_missing_schema_file(tmp_path: Path) -> None:
    _schema_error(tmp_path / "absent.toml", match="schema file not found")


def test_schema_path_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()

    _schema_error(folder, match="schema")


@pytest.mark.parametrize(
    "text",
    [
        'name = "x"\ntarget = \n',
        '[[numeric]\nname = "AGE"\n',
        'name = "unterminated\n',
        'name = "a"\nname = "b"\n',
    ],
    ids=["no-value", "bad-table", "unterminated-string", "duplicate-key"],
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(text, encoding="utf-8")

    _schema_error(path, match="not valid TOML")


def test_schema_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "schema.toml"
    path.write_bytes(b'name = "caf\xe9"\n')

    _schema_error(path, match="not valid TOML")


@pytest.mark.parametrize(("low", "high"), [(50, 50), (100, 18)], ids=["equal", "reversed"])
def test_numeric_min_not_below_max(
    embedded_document: Document, tmp_path: Path, low: int, high: int
) -> None:
    document = _edited(embedded_document, lambda d: _numeric(d, "AGE").update(min=low, max=high))

    error = _schema_error(_write(tmp_path, document), match=r"numeric 'AGE': min must be < max")
    assert "numeric.1" in str(error)


def test_protected_column_not_declared(embedded_document: Document, tmp_path: Path) -> None:
    document = _edited(embedded_document, lambda d: d.update(protected=["SEX", "INCOME"]))

    _schema_error(_write(tmp_path, document), match=r"protected column.*not declared.*INCOME")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: _numeric(d, "LIMIT_BAL").update(maximum=5), "numeric.0.maximum"),
        (lambda d: d["categorical"][0].update(labels=["m", "f"]), "categorical.0.labels"),
    ],
    ids=["top-level", "numeric", "categorical"],
)
def test_unknown_key(
    embedded_document: Document, tmp_path: Path, edit: Callable[[Document], None], key: str
) -> None:
    document = _edited(embedded_document, edit)

    _schema_error(_write(tmp_path, document), match=rf"invalid schema at '{key}': unknown key")


# --- missing values, special codes, bands, descriptions ---------------------------------


def test_missing_special_and_bands_load(embedded_document: Document, tmp_path: Path) -> None:
    def edit(d: Document) -> None:
        _numeric(d, "LIMIT_BAL").update(missing="allow")
        _numeric(d, "AGE").update(special=[99, 98])
        _categorical(d, "PAY_0").update(missing="allow")

    schema = load_schema(_write(tmp_path, _edited(embedded_document, edit)))

    assert schema.feature("LIMIT_BAL").allows_missing
    assert schema.feature("PAY_0").allows_missing
    assert not schema.feature("AGE").allows_missing
    age = schema.feature("AGE")
    assert age.special == (99, 98)  # schema order, kept
    with pytest.raises(KeyError, match="no feature 'INCOME'"):
        schema.feature("INCOME")


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (
            lambda d: _numeric(d, "LIMIT_BAL").update(missing="impute"),
            "numeric.0.missing",
            "numeric 'LIMIT_BAL': missing must be one of 'refuse', 'allow'; got 'impute'",
        ),
        (
            lambda d: _categorical(d, "PAY_0").update(missing=True),
            "categorical.3.missing",
            "categorical 'PAY_0': missing must be one of 'refuse', 'allow'; got True",
        ),
        (
            lambda d: _numeric(d, "AGE").update(special=[96, 101]),
            "numeric.1",
            "numeric 'AGE': special code 101 lies outside the bounds [18, 100]",
        ),
        (
            lambda d: _numeric(d, "PAY_AMT1").update(special=[-1]),
            "numeric.8",
            "numeric 'PAY_AMT1': special code -1 lies outside the bounds [0, 2000000]",
        ),
        (
            lambda d: _numeric(d, "AGE").update(special=[96, 98, 96]),
            "numeric.1",
            "numeric 'AGE': special code 96 is listed twice",
        ),
        (
            lambda d: _numeric(d, "AGE").update(special=[96.5]),
            "numeric.1",
            "numeric 'AGE': special code 96.5 is not a whole number (the column is integer)",
        ),
        (
            lambda d: _numeric(d, "AGE").update(bands=[25, 45, 35]),
            "numeric.1",
            "numeric 'AGE': bands must be strictly increasing",
        ),
        (
            lambda d: _numeric(d, "AGE").update(bands=[25, 25]),
            "numeric.1",
            "numeric 'AGE': bands must be strictly increasing",
        ),
        (
            lambda d: _numeric(d, "AGE").update(bands=[18, 40]),
            "numeric.1",
            "numeric 'AGE': band edge 18 is not inside the bounds (18, 100)",
        ),
        (
            lambda d: _numeric(d, "AGE").update(bands=[40, 120]),
            "numeric.1",
            "numeric 'AGE': band edge 120 is not inside the bounds (18, 100)",
        ),
        (lambda d: _numeric(d, "AGE").update(bands=[]), "numeric.1.bands", "at least 1 item"),
        (
            lambda d: _numeric(d, "AGE").update(description=""),
            "numeric.1.description",
            "at least 1 character",
        ),
        (
            lambda d: _categorical(d, "SEX").update(special=[9]),
            "categorical.0.special",
            "unknown key",
        ),
        (
            lambda d: _categorical(d, "SEX").update(bands=[1]),
            "categorical.0.bands",
            "unknown key",
        ),
    ],
    ids=[
        "unknown-missing-mode",
        "missing-not-a-mode",
        "special-above-max",
        "special-below-min",
        "special-twice",
        "special-not-whole",
        "bands-unordered",
        "bands-repeated",
        "band-at-min",
        "band-above-max",
        "bands-empty",
        "description-empty",
        "special-on-categorical",
        "bands-on-categorical",
    ],
)
def test_bad_new_keys_get_one_line_naming_the_feature_and_key(
    embedded_document: Document,
    tmp_path: Path,
    edit: Callable[[Document], None],
    key: str,
    message: str,
) -> None:
    path = _write(tmp_path, _edited(embedded_document, edit))

    error = _schema_error(path, match=re.escape(f"invalid schema at '{key}': "))
    assert message in str(error)
