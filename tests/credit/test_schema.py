"""Dataset schema: the embedded contract, its hash, and SchemaErrors for bad schema files."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from credit.errors import SchemaError
from credit.schema import DatasetSchema, UnexpectedColumns, embedded_schema_path, load_schema

PROTECTED = {"SEX", "EDUCATION", "MARRIAGE", "AGE"}
Document = dict[str, Any]


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
