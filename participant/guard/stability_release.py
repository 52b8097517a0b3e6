"""The bank's stability release: counts of its later file on the development model's bins.

A bank that monitors stability configures a later file and the development model it
holds (:class:`~participant.guard.settings.StabilityPolicy`). It answers a stability
query (:attr:`~credit.messages.Task.STABILITY`) with its later file's rows per bin of
every model input (the model encoder's bins: regular, special and missing) and per
score bin of the model (the run's equal-width score bins): a
:class:`~credit.governance.stability_release.StabilityLayout` the bank derives
itself, never from the message. It refuses a request

* whose model (the weights' SHA-256) or layout digest differ from its own (a
  coordinator that chose bins, e.g. to isolate one customer, is refused: it can only
  ask for the bins of the model the bank holds);
* for more score bins than its evaluation policy releases;
* while the later file holds fewer than ``min_rows`` rows;
* in the clear when the bank requires secure aggregation.

Under a privacy budget the release is a Gaussian mechanism on the later file's
records (one row adds 1 to one bin of each of the F characteristics and of the
score: L2 sensitivity ``sqrt(F + 1)``): noise of standard deviation ``z * sqrt(F +
1)`` on every count, ``z`` calibrated so that the release alone costs
``budget_share * max_epsilon`` (:func:`~privacy.accounting.calibrate_noise_multiplier`,
q = 1, one step), charged to the bank's ledger as a ``stability-release`` event about
its ``later`` row set before anything is released. Later files are other records than
the development file's (applications made after it), so their releases compose in
parallel with the development rows' and sequentially with each other: every
monitoring release of the bank draws on one budget (:mod:`privacy.accounting`). The
guard checks that premise: under a budget a later file sharing a record with the
development file (:func:`shared_records`) is refused. A release the budget does not
allow is refused (nothing recorded).

The bank's own report (no release) compares its later file with its development
sample, all its rows (:func:`local_comparison`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from flwr.app import RecordDict

from credit import message_keys
from credit.errors import ConfigError, FedcreditError
from credit.gbdt import BoostedModel
from credit.governance.stability import DEFAULT_QUANTILE
from credit.governance.stability_release import (
    PopulationComparison,
    StabilityCounts,
    StabilityLayout,
    compare_populations,
    stability_counts,
    stability_vector,
)
from credit.loading import load_bank_csv
from credit.messages import QueryInstructions, secagg
from credit.messages.stability import StabilityRequest, stability_counts_to_record
from credit.metrics import score_bin_index
from credit.model_card import CreditModel
from credit.schema import DatasetSchema
from participant.guard.bank import PreparedBank, record_keys
from participant.guard.handlers import (
    BankRequest,
    GuardRefusal,
    checked_bank,
    privacy_guard,
    refusal_reply,
)
from participant.guard.secagg_client import mask_totals, receive_keys
from participant.guard.settings import GuardSettings, StabilityPolicy
from privacy.accounting import DpEvent, one_release_noise_multiplier
from privacy.errors import PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger
from privacy.noise_keys import NoisePurpose

__all__ = [
    "DevelopmentModel",
    "development_model",
    "local_comparison",
    "sample_counts",
    "stability",
    "stability_event",
]

_SCORE_BINS_KEY = "score-bins"


@dataclass(frozen=True, eq=False)
class DevelopmentModel:
    """The development model a bank holds, with the layout it derives from it.

    Attributes
    ----------
    model : CreditModel
        The loaded model (encoder, weights, card).
    layout : StabilityLayout
        Its characteristics' bins and its run's score bins.
    sha256 : str
        SHA-256 of its weights file (the card's, checked on load).
    """

    model: CreditModel
    layout: StabilityLayout
    sha256: str


def development_model(
    model_dir: Path, schema: DatasetSchema, *, signer: Path | None = None
) -> DevelopmentModel:
    """Verify and load the development model's package in ``model_dir``; derive its layout.

    Parameters
    ----------
    model_dir : pathlib.Path
        A run's signed model package (``OUT/model``).
    schema : DatasetSchema
        The bank's schema.
    signer : pathlib.Path, optional
        The pinned coordinator audit public key the package must be signed with.

    Raises
    ------
    ConfigError
        No package there or one that fails verification, a boosted-trees package, a
        model of another schema,
        no score bins in its card, or an encoder without bins (standardised); the
        folder is named.
    """
    from credit.audit import load_public_key
    from credit.package import load_package

    try:
        pinned = None if signer is None else load_public_key(signer)
    except FedcreditError as exc:
        raise ConfigError(f"not the coordinator's public key ({exc})", source=str(signer)) from exc
    try:
        model = load_package(model_dir, signer=pinned).model
    except (FedcreditError, OSError) as exc:
        raise ConfigError(f"not a verified model package ({exc})", source=str(model_dir)) from exc
    if isinstance(model, BoostedModel):
        raise ConfigError(
            "a boosted-trees package: the stability monitor takes logistic-regression and "
            "MLP packages (a boosting run releases no development counts yet)",
            source=str(model_dir),
        )
    if model.encoder.schema_hash != schema.schema_hash():
        raise ConfigError(
            f"the model was trained on schema {model.encoder.schema_hash[:12]}, the bank's "
            f"schema is {schema.schema_hash()[:12]}",
            source=str(model_dir),
        )
    training = model.card.get("training")
    score_bins = training.get(_SCORE_BINS_KEY) if isinstance(training, dict) else None
    if not isinstance(score_bins, int):
        raise ConfigError("the model card records no score-bins", source=str(model_dir))
    try:
        layout = StabilityLayout.of(model.encoder, score_bins)
    except ValueError as exc:
        raise ConfigError(str(exc), source=str(model_dir)) from exc
    return DevelopmentModel(model=model, layout=layout, sha256=str(model.card["weights"]["sha256"]))


def sample_counts(rows: pd.DataFrame, development: DevelopmentModel) -> StabilityCounts:
    """A sample's counts on the development model's layout: its rows' bins and score bins.

    ``rows`` are validated rows (:func:`credit.loading.load_bank_csv`).
    """
    model, layout = development.model, development.layout
    scores = model.predict_proba(rows)
    return stability_counts(
        model.encoder.bin_indices(rows), score_bin_index(scores, layout.score_bins), layout
    )


def _later_counts(
    policy: StabilityPolicy, schema: DatasetSchema
) -> tuple[DevelopmentModel, StabilityCounts, pd.DataFrame]:
    """The development model, the later file's counts and its rows."""
    development = development_model(policy.model_dir, schema, signer=policy.signer)
    later = load_bank_csv(policy.later_path, schema).frame
    return development, sample_counts(later, development), later


def _development_rows(bank: PreparedBank) -> pd.DataFrame:
    """All the bank's development rows: training, validation part and held-out."""
    return pd.concat([bank.train, bank.validation, bank.test], ignore_index=True)


def shared_records(bank: PreparedBank, later: pd.DataFrame) -> int:
    """How many of the later file's records are also records of the development file.

    Records are compared by their keys (:func:`participant.guard.bank.record_keys`:
    the id column, or the whole row without one). The ``later`` row set's budget is
    apart from the development rows' only because its records are others: a bank
    with a budget releases nothing about a later file that shares records with its
    development file.
    """
    known = set(record_keys(_development_rows(bank), bank.schema))
    return sum(key in known for key in record_keys(later, bank.schema))


def local_comparison(
    settings: GuardSettings, *, quantile: float = DEFAULT_QUANTILE
) -> tuple[StabilityLayout, PopulationComparison]:
    """The bank's own PSI and CSI: its later file against all its development rows
    (training, validation and held-out).

    Nothing is released: the bank's rows and counts stay at the bank.

    Raises
    ------
    ConfigError
        The bank has no stability policy, or its model folder is not usable.
    credit.errors.SchemaError
        A data file breaks the schema (file, column and row named).
    """
    policy = settings.stability
    if policy is None:
        raise ConfigError("the bank has no later file configured", source="--later-data")
    from participant.guard.bank import prepare_bank

    bank = prepare_bank(settings.source(), settings.holdout)
    development, later, _ = _later_counts(policy, bank.schema)
    expected = sample_counts(_development_rows(bank), development)
    return development.layout, compare_populations(expected, later, quantile=quantile)


def stability_event(run: str, noise_multiplier: float, layout: StabilityLayout) -> DpEvent:
    """One stability release of ``layout``'s counts: q = 1, one step, sensitivity sqrt(F + 1)."""
    return DpEvent(
        round=0,
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=layout.sensitivity,
        kind="stability-release",
        run=run,
        rows="later",
    )


def stability(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """The bank's later-file counts: in the clear, or masked for a secure sum (module docstring)."""
    asked = StabilityRequest.take(request.content)
    inputs = secagg.TrainInputs.take_optional(request.content)
    bank = checked_bank(request, query)
    settings = request.settings
    policy = settings.stability
    if policy is None:
        raise GuardRefusal(
            "stability",
            f"bank '{bank.name}' monitors no later file: it answers no stability query",
        )
    if inputs is None and settings.require_secure_aggregation:
        raise GuardRefusal(
            "plain-update",
            f"bank '{bank.name}' releases its later file's counts only through secure "
            "aggregation; the query asks for them in the clear",
        )
    development, counts, later = _later_counts(policy, bank.schema)
    _check_request(asked, development, bank.name, settings)
    rows = len(later)
    if rows < policy.min_rows:
        raise GuardRefusal(
            "stability-rows",
            f"bank '{bank.name}' releases no counts of a later file with fewer than "
            f"{policy.min_rows} rows; its file has {rows}",
        )
    code = None if inputs is None else receive_keys(request.secagg, inputs)
    content = RecordDict()
    vector = counts.to_vector()
    guard = privacy_guard(bank, settings, noise_keys=request.noise_keys)
    run = query.run_key(request.flower_run_id)
    noise_multiplier = None
    if guard is not None:
        shared = shared_records(bank, later)
        if shared:
            raise GuardRefusal(
                "stability-records",
                f"bank '{bank.name}' releases counts of a later file under its budget only "
                f"when its records are not in the development file; {shared} of its {rows} "
                f"records are (by {bank.schema.id_column or 'whole row'}): monitor "
                "applications made after the development sample",
            )
        try:
            event = _charge(guard.ledger, run, development.layout, policy)
        except PrivacyBudgetExceeded as refusal:
            return refusal_reply(request, refusal, guard, run)
        noise_multiplier = event.noise_multiplier
        deviation = event.noise_multiplier * event.max_grad_norm
        noise = guard.noise(event, NoisePurpose.STABILITY_RELEASE)
        vector = vector + noise.standard_normal(vector.size) * deviation
        guard.summary().put(content)
    _record_release(request, run, development, rows, noise_multiplier, secure=inputs is not None)
    released = StabilityCounts.from_vector(vector, development.layout)
    totals = stability_vector(released, development.layout)
    if inputs is None or code is None:
        content[message_keys.STABILITY_COUNTS] = stability_counts_to_record(totals)
        return content
    content[message_keys.ARRAYS] = mask_totals(
        request.secagg, server_round=inputs.server_round, code=code, totals=totals
    )
    return content


def _record_release(
    request: BankRequest,
    run: str,
    development: DevelopmentModel,
    rows: int,
    noise_multiplier: float | None,
    *,
    secure: bool,
) -> None:
    """The release in the bank's audit log, and the end of the monitoring run.

    The stability query is the run's last request with the bank's data (a secure sum's
    consistency and unmask exchanges follow, which record nothing), so the log is
    closed here as a training run's is by its last unmask.
    """
    if request.audit is None:
        return
    request.audit.append(
        "stability-release",
        {
            "run": run,
            "flower_run_id": request.flower_run_id,
            "model_sha256": development.sha256,
            "layout_sha256": development.layout.digest(),
            "rows": rows,
            "noise_multiplier": noise_multiplier,
            "secure": secure,
        },
    )
    request.audit.append("run-end", {"run": run, "server_round": 0})


def _check_request(
    asked: StabilityRequest, development: DevelopmentModel, bank: str, settings: GuardSettings
) -> None:
    """Refuse a request for another model, another layout, or more score bins than allowed."""
    layout = development.layout
    if asked.model_sha256 != development.sha256:
        raise GuardRefusal(
            "stability-layout",
            f"bank '{bank}' monitors the model {development.sha256[:12]}; the query asks about "
            f"model {asked.model_sha256[:12]}",
        )
    if asked.score_bins > settings.evaluation.max_score_bins:
        raise GuardRefusal(
            "stability-layout",
            f"bank '{bank}' releases at most {settings.evaluation.max_score_bins} score bins; "
            f"the query asks for {asked.score_bins}",
        )
    if asked.score_bins != layout.score_bins or asked.layout_sha256 != layout.digest():
        raise GuardRefusal(
            "stability-layout",
            f"bank '{bank}' counts on its development model's bins ({layout.score_bins} score "
            f"bins, layout {layout.digest()[:12]}); the query asks for {asked.score_bins} "
            f"score bins, layout {asked.layout_sha256[:12]}",
        )


def _charge(
    ledger: PrivacyLedger, run: str, layout: StabilityLayout, policy: StabilityPolicy
) -> DpEvent:
    """Calibrate the release to its share of the budget and charge it (or refuse).

    Raises
    ------
    PrivacyBudgetExceeded
        No noise multiplier fits the share, or the release would take the later
        files' epsilon past ``max_epsilon``; nothing is recorded.
    """
    share = policy.budget_share * ledger.budget.max_epsilon
    try:
        noise_multiplier = one_release_noise_multiplier(share, ledger.delta, rows="later")
    except ValueError as exc:
        raise PrivacyBudgetExceeded(
            bank=ledger.bank,
            spent=ledger.epsilon,
            requested=share,
            maximum=ledger.budget.max_epsilon,
            server_round=0,
            detail=f"no noise multiplier makes a stability release cost {share:.3g} ({exc})",
        ) from exc
    event = stability_event(run, noise_multiplier, layout)
    ledger.charge(event)
    return event
