"""The applicant request model, generated from the package's dataset schema.

``POST /v1/score`` takes one applicant object or ``{"applicants": [...]}``. The
applicant model is built with pydantic's :func:`~pydantic.create_model` from the
schema, one field per column, so the OpenAPI document lists every field with its
public bounds (numeric), its levels (categorical), whether it must be a whole number
and whether it may be missing:

* a model input is required, unless its schema entry allows missing values
  (``missing = "allow"``): then it may be left out or ``null``;
* a protected column that is not a model input, and the id column, may be sent
  (validated as the schema says) and are otherwise ignored;
* any other field (the target included) is refused, as is a string where a number is
  expected, a fractional value in an integer column, NaN or infinity.

Validation stops at the first problem of each field and reports every field:
:func:`parse_applicants` raises :class:`ApplicantsRefused` whose problems name the
field (``applicants[3].AGE``) and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from credit.schema import CategoricalFeature, DatasetSchema, NumericFeature
from serving.errors import ApplicantsRefused, Problem

__all__ = [
    "BATCH_FIELD",
    "DEFAULT_MAX_BATCH",
    "ApplicantForm",
    "applicant_form",
]

BATCH_FIELD = "applicants"
"""The key of a batch request: ``{"applicants": [...]}``."""
DEFAULT_MAX_BATCH = 1_000
"""Applicants one request may hold (a service scores small batches; files go to
``fedcredit score``)."""

_OUT_OF_RANGE = frozenset({"greater_than_equal", "less_than_equal"})
_FORM_CONFIG = ConfigDict(extra="forbid", frozen=True)


def _refuse_text_and_bool(value: object) -> object:
    """A number field takes a JSON number: not ``"2000"``, not ``true``."""
    if isinstance(value, str | bool):
        raise PydanticCustomError(
            "number_type",
            "Input should be a JSON number, not {value}",
            {"value": json.dumps(value)},
        )
    return value


_Number = BeforeValidator(_refuse_text_and_bool)


def _numeric_field(feature: NumericFeature, *, required: bool) -> tuple[Any, Any]:
    kind: Any = Annotated[int if feature.integer else float, _Number]
    missing = " May be missing (null or left out)." if not required else ""
    whole = " A whole number." if feature.integer else ""
    special = (
        f" Special codes: {', '.join(f'{code:g}' for code in feature.special)}."
        if feature.special
        else ""
    )
    description = (
        f"{feature.description or feature.name}. Bounds [{feature.min:g}, {feature.max:g}]."
        f"{whole}{special}{missing}"
    )
    field = Field(
        default=None if not required else ...,
        ge=feature.min,
        le=feature.max,
        allow_inf_nan=False if not feature.integer else None,
        description=description,
    )
    return (kind if required else kind | None), field


def _categorical_field(feature: CategoricalFeature, *, required: bool) -> tuple[Any, Any]:
    kind: Any = Literal[feature.levels]
    if feature.is_integer:
        kind = Annotated[kind, _Number]
    missing = " May be missing (null or left out)." if not required else ""
    description = (
        f"{feature.description or feature.name}. Levels: "
        f"{', '.join(map(str, feature.levels))}.{missing}"
    )
    field = Field(default=None if not required else ..., description=description)
    return (kind if required else kind | None), field


def _fields(schema: DatasetSchema) -> dict[str, Any]:
    inputs = set(schema.input_features)
    fields: dict[str, Any] = {}
    if schema.id_column is not None:
        fields[schema.id_column] = (
            int | str | None,
            Field(default=None, description="The applicant's id (not used for scoring)."),
        )
    for numeric in schema.numeric:
        required = numeric.name in inputs and not numeric.allows_missing
        fields[numeric.name] = _numeric_field(numeric, required=required)
    for categorical in schema.categorical:
        required = categorical.name in inputs and not categorical.allows_missing
        fields[categorical.name] = _categorical_field(categorical, required=required)
    return fields


def _path(loc: tuple[int | str, ...]) -> str:
    """``("applicants", 3, "AGE")`` as ``applicants[3].AGE``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not text:
            text = part
        elif part.startswith(("int", "float", "literal", "none")):  # a union member's tag
            continue
        else:
            text += f".{part}"
    return text or "body"


@dataclass(frozen=True)
class ApplicantForm:
    """The applicant and batch models of one schema, and the parser of request bodies.

    Attributes
    ----------
    schema : DatasetSchema
        The package's schema.
    applicant : type of pydantic.BaseModel
        One applicant (``Applicant``).
    batch : type of pydantic.BaseModel
        ``{"applicants": [Applicant, ...]}`` (``ApplicantBatch``), 1 to ``max_batch``.
    max_batch : int
        Applicants one request may hold.
    """

    schema: DatasetSchema
    applicant: type[BaseModel]
    batch: type[BaseModel]
    max_batch: int

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The applicants of a request body (one object or a batch), validated.

        Raises
        ------
        ApplicantsRefused
            The body is not JSON, not an object, or breaks the schema: every field's
            problem, named (``applicants[3].AGE``).
        """
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApplicantsRefused(
                (Problem("body", f"not valid JSON: {exc}", "json_invalid", None),)
            ) from None
        if not isinstance(document, dict):
            raise ApplicantsRefused(
                (
                    Problem(
                        "body",
                        'expected one applicant object or {"applicants": [...]}; '
                        f"got a JSON {type(document).__name__}",
                        "model_type",
                        None,
                    ),
                )
            )
        model = self.batch if BATCH_FIELD in document else self.applicant
        try:
            validated = model.model_validate(document)
        except ValidationError as exc:
            raise ApplicantsRefused(self._problems(exc)) from None
        if model is self.batch:
            rows: list[BaseModel] = validated.applicants  # type: ignore[attr-defined]
            return [row.model_dump() for row in rows]
        return [validated.model_dump()]

    def _problems(self, error: ValidationError) -> tuple[Problem, ...]:
        known = set(self.applicant.model_fields)
        problems = []
        for detail in error.errors(include_url=False, include_input=False):
            loc = tuple(detail["loc"])
            field = next((str(part) for part in reversed(loc) if part in known), None)
            problems.append(Problem(_path(loc), detail["msg"], detail["type"], field))
        return tuple(problems)

    def frame(self, applicants: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated applicants as the scorer's frame (:meth:`columns` as a frame)."""
        return pd.DataFrame(self.columns(applicants))

    def columns(self, applicants: list[dict[str, Any]]) -> dict[str, NDArray[Any]]:
        """Validated applicants as one array per model input, typed as
        :func:`credit.loading.load_bank_csv` types a file: the model inputs in schema
        order, numeric features as float64, integer-coded categoricals as int64
        (float64 when missing values are allowed), string levels as str; a missing
        value is NaN. The scorer takes these without building a frame."""
        columns: dict[str, NDArray[Any]] = {}
        for name in self.schema.input_features:
            feature = self.schema.feature(name)
            values = [row[name] for row in applicants]
            if isinstance(feature, CategoricalFeature) and not feature.is_integer:
                columns[name] = np.array(
                    [np.nan if value is None else value for value in values], dtype=object
                )
            elif isinstance(feature, CategoricalFeature) and not feature.allows_missing:
                columns[name] = np.array(values, dtype=np.int64)
            else:
                columns[name] = np.array(
                    [np.nan if value is None else value for value in values], dtype=np.float64
                )
        return columns

    @staticmethod
    def out_of_range(problem: Problem) -> bool:
        """Whether a problem is a value outside its feature's public bounds."""
        return problem.kind in _OUT_OF_RANGE


def applicant_form(schema: DatasetSchema, *, max_batch: int = DEFAULT_MAX_BATCH) -> ApplicantForm:
    """The request models of ``schema`` (module docstring).

    Parameters
    ----------
    schema : DatasetSchema
        The package's dataset schema.
    max_batch : int, default 1,000
        Applicants one request may hold, >= 1.

    Raises
    ------
    ValueError
        ``max_batch`` < 1.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1; got {max_batch}")
    applicant: type[BaseModel] = create_model(
        "Applicant",
        __config__=_FORM_CONFIG,
        __doc__=f"One applicant of schema '{schema.name}' (unknown fields are refused).",
        **_fields(schema),
    )
    batch: type[BaseModel] = create_model(
        "ApplicantBatch",
        __config__=_FORM_CONFIG,
        __doc__=f"Up to {max_batch:,} applicants scored in one request.",
        applicants=(list[applicant], Field(min_length=1, max_length=max_batch)),  # type: ignore[valid-type]
    )
    return ApplicantForm(schema=schema, applicant=applicant, batch=batch, max_batch=max_batch)
