"""A malicious coordinator goes after the stability release (a bank's later-file counts).

A bank answers a stability query with its later file's rows per bin of the
development model it holds: the bins of the model's encoder and the run's score bins,
derived by the bank itself. What a coordinator controls in the query is which model
and layout it names. Against the bank's guard:

* bins of the coordinator's choosing (here: an edge pair around one customer's
  value, so that customer sits alone in a bin, whose count then says the customer is
  in the later file) are refused, and so is another model;
* more score bins than the bank's policy releases are refused;
* a later file with fewer rows than the bank's minimum is never counted;
* a bank that requires secure aggregation refuses to release its counts in the clear;
* and a bank with a budget charges every release to its ledger (the later row set,
  sensitivity sqrt(F + 1)), noisy, and refuses releases past its budget.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import MessageType, RecordDict

from credit.audit import load_or_create_signing_key
from credit.encoding import FeatureEncoder, StatsSource, fit_encoder
from credit.errors import ConfigError
from credit.feature_stats import transform_values
from credit.governance import ScoreScaling
from credit.governance.stability_release import StabilityLayout, stability_counts
from credit.messages import Refusal, Task
from credit.messages.stability import StabilityRequest, stability_counts_from_content
from credit.metrics import score_bin_index
from credit.model_card import save_model
from credit.models import ModelKind, ModelSpec, build_model
from credit.package import scoring_settings, write_package
from credit.schema import DatasetSchema, embedded_schema_path
from participant.guard.bank_guard import BankGuard
from participant.guard.settings import GuardSettings, StabilityPolicy
from participant.guard.stability_release import development_model
from participant.relay.client_app import GuardRefused
from privacy.ledger import read_ledger
from tests.participant.guard.bank_messages import (
    acme_settings,
    context,
    guarded_app,
    message,
    run_instructions,
)

SCORE_BINS = 100
COLUMN = "BILL_AMT1"


def _development_model(folder: Path, schema: DatasetSchema) -> tuple[FeatureEncoder, str]:
    """A signed model package as a run writes it; its encoder and its weights' SHA-256."""
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    save_model(
        folder,
        build_model(spec, seed=1),
        spec=spec,
        encoder=encoder,
        schema_name=schema.name,
        training={"score-bins": SCORE_BINS},
        metrics={},
    )
    write_package(
        folder,
        schema_bytes=embedded_schema_path().read_bytes(),
        scoring=scoring_settings(
            encoder, schema, scaling=ScoreScaling(), cutoff=0.5, score_bins=SCORE_BINS
        ),
        privacy={},
        run="development",
        signing_key=load_or_create_signing_key(folder.parent / "keys" / "coordinator.key"),
    )
    card = json.loads((folder / "model_card.json").read_text())
    return encoder, str(card["weights"]["sha256"])


def _bank(
    tmp_path: Path,
    data: Path,
    later: Path,
    *,
    max_epsilon: float | None = None,
    min_rows: int = 50,
    budget_share: float = 0.1,
    require_secure: bool = False,
) -> tuple[GuardSettings, BankGuard]:
    settings = acme_settings(data, max_epsilon=max_epsilon).model_copy(
        update={
            "stability": StabilityPolicy(
                later_path=later,
                model_dir=tmp_path / "model",
                min_rows=min_rows,
                budget_share=budget_share,
            ),
            "require_secure_aggregation": require_secure,
        }
    )
    return settings, BankGuard(settings)


def _query(
    schema: DatasetSchema, *, model_sha256: str, layout: StabilityLayout, score_bins: int
) -> RecordDict:
    content = RecordDict()
    run_instructions(schema).query(Task.STABILITY).put(content)
    StabilityRequest(
        model_sha256=model_sha256, layout_sha256=layout.digest(), score_bins=score_bins
    ).put(content)
    return content


def _ask(guard: BankGuard, content: RecordDict) -> RecordDict:
    reply = guarded_app(guard)(message(MessageType.QUERY, content), context())
    if reply.has_error():
        raise GuardRefused(reply.error.reason)
    return reply.content


def _isolating(encoder: FeatureEncoder, value: float) -> FeatureEncoder:
    """The encoder with two more edges of ``COLUMN`` around ``value``: a bin of that value only."""
    numeric = []
    for encoding in encoder.numeric:
        if encoding.name == COLUMN:
            point = float(transform_values(np.array([value]), encoding.transform)[0])
            width = 1e-9 * max(1.0, abs(point))
            edges = sorted({*encoding.edges, point - width, point + width})
            encoding = encoding.model_copy(update={"edges": tuple(edges)})
        numeric.append(encoding)
    return encoder.model_copy(update={"numeric": tuple(numeric)})


@pytest.fixture
def files(
    tmp_path: Path, embedded_frame: pd.DataFrame, schema: DatasetSchema
) -> tuple[Path, Path, FeatureEncoder, str]:
    data = tmp_path / "acme.csv"
    embedded_frame.iloc[:600].to_csv(data, index=False)
    later = tmp_path / "acme-later.csv"
    embedded_frame.iloc[600:900].to_csv(later, index=False)
    encoder, sha = _development_model(tmp_path / "model", schema)
    return data, later, encoder, sha


def test_bins_of_the_coordinators_choosing_that_isolate_a_customer_are_refused(
    tmp_path: Path,
    schema: DatasetSchema,
    embedded_frame: pd.DataFrame,
    files: tuple[Path, Path, FeatureEncoder, str],
) -> None:
    data, later, encoder, sha = files
    rows = embedded_frame.iloc[600:900]
    values = rows[COLUMN]
    target = float(values[values.map(values.value_counts()) == 1].iloc[0])
    attacker = _isolating(encoder, target)
    layout = StabilityLayout.of(attacker, SCORE_BINS)
    # Counted on those bins, the target's bin would hold the target alone:
    bins = attacker.bin_indices(rows)[COLUMN]
    lonely = attacker.bin_indices(rows.loc[values == target])[COLUMN][0]
    counts = stability_counts(
        attacker.bin_indices(rows), score_bin_index(np.zeros(len(rows)), SCORE_BINS), layout
    )
    assert counts.populations[COLUMN].counts[lonely] == 1 == (bins == lonely).sum()
    _, guard = _bank(tmp_path, data, later)

    with pytest.raises(GuardRefused, match="counts on its development model's bins"):
        _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS))


def test_another_model_is_refused(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, _ = files
    _, guard = _bank(tmp_path, data, later)
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    with pytest.raises(GuardRefused, match="the query asks about model 000000000000"):
        _ask(guard, _query(schema, model_sha256="0" * 64, layout=layout, score_bins=SCORE_BINS))


def test_more_score_bins_than_the_banks_policy_are_refused(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, sha = files
    _, guard = _bank(tmp_path, data, later)
    layout = StabilityLayout.of(encoder, 1000)

    with pytest.raises(GuardRefused, match="at most 100 score bins; the query asks for 1000"):
        _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=1000))


def test_a_later_file_with_too_few_rows_is_not_counted(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, sha = files
    _, guard = _bank(tmp_path, data, later, min_rows=301)
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    with pytest.raises(GuardRefused, match="fewer than 301 rows; its file has 300"):
        _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS))


def test_a_bank_that_requires_secure_aggregation_refuses_plain_counts(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, sha = files
    _, guard = _bank(tmp_path, data, later, require_secure=True)
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    with pytest.raises(GuardRefused, match="only through secure aggregation"):
        _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS))


def test_the_honest_query_gets_the_later_files_counts(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, sha = files
    _, guard = _bank(tmp_path, data, later)
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    reply = _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS))

    vector = stability_counts_from_content(reply, length=layout.length + 1)
    assert vector[-1] == 1  # one bank's counts
    starts = np.cumsum([0, *layout.n_bins.values()])
    for start, stop in itertools.pairwise(starts):
        assert vector[start:stop].sum() == 300  # every row once per characteristic and score


def test_a_bank_with_a_budget_charges_noisy_releases_until_its_budget_is_spent(
    tmp_path: Path, schema: DatasetSchema, files: tuple[Path, Path, FeatureEncoder, str]
) -> None:
    data, later, encoder, sha = files
    settings, guard = _bank(tmp_path, data, later, max_epsilon=1.0, budget_share=0.5)
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    query = _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS)

    first = stability_counts_from_content(_ask(guard, query), length=layout.length + 1)
    replies = [_ask(guard, query) for _ in range(5)]

    assert not np.array_equal(first[:-1], np.round(first[:-1]))  # noisy counts
    assert settings.ledger_path is not None
    events = read_ledger(settings.ledger_path).events
    assert {(e.kind, e.rows, e.max_grad_norm) for e in events} == {
        ("stability-release", "later", math.sqrt(len(encoder.features) + 1))
    }
    refused = [reply for reply in replies if Refusal.present(reply)]
    assert refused, "the later files' budget never ran out"
    assert len(events) == 1 + len(replies) - len(refused)


def test_a_bank_with_a_budget_releases_nothing_about_development_customers_again(
    tmp_path: Path,
    schema: DatasetSchema,
    embedded_frame: pd.DataFrame,
    files: tuple[Path, Path, FeatureEncoder, str],
) -> None:
    """The later row set has a budget of its own only because its records are others: a
    later file that repeats development customers (same ids) would let a coordinator
    learn about them past the training rows' budget, so nothing is released, uncharged."""
    data, _, encoder, sha = files
    later = tmp_path / "acme-again.csv"
    embedded_frame.iloc[550:850].to_csv(later, index=False)  # 50 development customers
    settings, guard = _bank(tmp_path, data, later, max_epsilon=1.0)
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    with pytest.raises(GuardRefused, match="50 of its 300 records are"):
        _ask(guard, _query(schema, model_sha256=sha, layout=layout, score_bins=SCORE_BINS))
    assert settings.ledger_path is not None
    assert not settings.ledger_path.exists() or not read_ledger(settings.ledger_path).events


def test_a_development_model_not_signed_by_the_pinned_coordinator_key_is_refused(
    tmp_path: Path, schema: DatasetSchema
) -> None:
    """The bank counts only on the bins of a package its bundle's coordinator key signed."""
    folder = tmp_path / "model"
    _development_model(folder, schema)
    pinned = tmp_path / "keys" / "coordinator.pub"
    assert development_model(folder, schema, signer=pinned).layout is not None
    other = tmp_path / "other" / "coordinator.key"
    load_or_create_signing_key(other)
    with pytest.raises(ConfigError, match="not a verified model package"):
        development_model(folder, schema, signer=other.with_suffix(".pub"))
    card = folder / "model_card.json"
    card.write_bytes(card.read_bytes().replace(b'"score-bins": 100', b'"score-bins": 101'))
    with pytest.raises(ConfigError, match="not a verified model package"):
        development_model(folder, schema, signer=pinned)
