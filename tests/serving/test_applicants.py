"""The request models generated from the schema: what they accept, refuse and document."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit.schema import DatasetSchema
from serving.applicants import ApplicantForm, applicant_form
from serving.errors import ApplicantsRefused


@pytest.fixture(scope="module")
def form(schema: DatasetSchema) -> ApplicantForm:
    return applicant_form(schema, max_batch=3)


def applicant_rows(frame: pd.DataFrame, schema: DatasetSchema, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows of the embedded data as JSON applicants (no target)."""
    rows = json.loads(frame.drop(columns=[schema.target]).head(n).to_json(orient="records"))
    return list(rows)


@pytest.fixture(scope="module")
def row(embedded_frame: pd.DataFrame, schema: DatasetSchema) -> dict[str, Any]:
    return applicant_rows(embedded_frame, schema, 1)[0]


def refusal(form: ApplicantForm, document: object) -> ApplicantsRefused:
    with pytest.raises(ApplicantsRefused) as caught:
        form.parse(json.dumps(document).encode())
    return caught.value


def test_one_applicant_and_a_batch_parse_to_the_same_rows(
    form: ApplicantForm, row: dict[str, Any]
) -> None:
    one = form.parse(json.dumps(row).encode())
    batch = form.parse(json.dumps({"applicants": [row, row]}).encode())
    assert one == batch[:1] and batch[0] == batch[1]
    assert one[0]["LIMIT_BAL"] == row["LIMIT_BAL"]


def test_the_frame_is_typed_as_a_validated_file(
    form: ApplicantForm, row: dict[str, Any], schema: DatasetSchema
) -> None:
    frame = form.frame(form.parse(json.dumps(row).encode()))
    assert tuple(frame.columns) == schema.input_features
    assert frame["LIMIT_BAL"].dtype == np.float64
    assert frame["PAY_0"].dtype == np.int64
    assert frame["PAY_0"].iloc[0] == row["PAY_0"]


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"AGE": 101}, "AGE", "less_than_equal"),
        ({"LIMIT_BAL": -1}, "LIMIT_BAL", "greater_than_equal"),
        ({"PAY_0": 9}, "PAY_0", "literal_error"),
        ({"PAY_0": True}, "PAY_0", "number_type"),
        ({"LIMIT_BAL": "20000"}, "LIMIT_BAL", "number_type"),
        ({"AGE": 30.5}, "AGE", "int_from_float"),
        ({"SSN": "123"}, "SSN", "extra_forbidden"),
        ({"default_payment_next_month": 1}, "default_payment_next_month", "extra_forbidden"),
    ],
)
def test_a_bad_field_is_named(
    form: ApplicantForm, row: dict[str, Any], change: dict[str, Any], field: str, kind: str
) -> None:
    refused = refusal(form, {**row, **change})
    assert [(p.path, p.kind) for p in refused.problems] == [(field, kind)]
    assert str(refused).startswith(f"{field}: ")


def test_a_missing_model_input_is_named(form: ApplicantForm, row: dict[str, Any]) -> None:
    refused = refusal(form, {k: v for k, v in row.items() if k != "PAY_AMT3"})
    assert [(p.path, p.kind, p.feature) for p in refused.problems] == [
        ("PAY_AMT3", "missing", "PAY_AMT3")
    ]


def test_nan_is_refused_in_a_number_field(form: ApplicantForm, row: dict[str, Any]) -> None:
    body = json.dumps({**row, "BILL_AMT1": float("nan")}).encode()  # Python writes NaN
    with pytest.raises(ApplicantsRefused, match=r"^BILL_AMT1: Input should be a finite number"):
        form.parse(body)


def test_batch_problems_name_the_applicant(form: ApplicantForm, row: dict[str, Any]) -> None:
    refused = refusal(form, {"applicants": [row, {**row, "AGE": 17}, {**row, "PAY_2": -3}]})
    assert [p.path for p in refused.problems] == ["applicants[1].AGE", "applicants[2].PAY_2"]
    assert str(refused) == (
        "applicants[1].AGE: Input should be greater than or equal to 18 (and 1 more)"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body: not valid JSON"),
        (b"[1, 2]", "body: expected one applicant object"),
        (b'{"applicants": []}', "applicants: List should have at least 1 item"),
    ],
)
def test_a_body_that_is_not_an_applicant_is_refused(
    form: ApplicantForm, body: bytes, message: str
) -> None:
    with pytest.raises(ApplicantsRefused, match=f"^{message}"):
        form.parse(body)


def test_a_batch_over_the_maximum_is_refused(form: ApplicantForm, row: dict[str, Any]) -> None:
    refused = refusal(form, {"applicants": [row] * 4})
    assert [(p.path, p.kind) for p in refused.problems] == [("applicants", "too_long")]


def test_the_json_schema_lists_bounds_levels_and_missing(form: ApplicantForm) -> None:
    properties = form.applicant.model_json_schema()["properties"]
    assert properties["LIMIT_BAL"]["minimum"] == 0
    assert properties["LIMIT_BAL"]["maximum"] == 2_000_000
    assert properties["PAY_0"]["enum"] == [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert "Repayment status" in properties["PAY_0"]["description"]
    # a protected column is validated when sent, never required
    assert "AGE" not in form.applicant.model_json_schema()["required"]
    assert "PAY_0" in form.applicant.model_json_schema()["required"]


def test_a_column_allowing_missing_values_may_be_null(schema: DatasetSchema) -> None:
    document = schema.model_dump(by_alias=True)
    document["numeric"] = [
        {**entry, "missing": "allow"} if entry["name"] == "BILL_AMT1" else entry
        for entry in document["numeric"]
    ]
    lenient = applicant_form(DatasetSchema.model_validate(document))
    required = lenient.applicant.model_json_schema()["required"]
    assert "BILL_AMT1" not in required and "BILL_AMT2" in required
    fields = {name: 0 for name in required}
    frame = lenient.frame(lenient.parse(json.dumps({**fields, "BILL_AMT1": None}).encode()))
    assert np.isnan(frame["BILL_AMT1"].iloc[0])
