"""What the model report shows, read from a run's files into typed sections.

The report is drawn from the files a run leaves, never from the run's live state:
``metrics.json``, the model card (``model/model_card.json``) and, for a scorecard
model, ``model/scorecard.csv``. So any run folder can be reported on again, and a
section whose source is absent (a key an older ``metrics.json`` lacks, a model with
no scorecard) is None here and left out of the page.

The model card is read by :mod:`.card`; the governance sections (calibration,
fairness, WoE/IV, scorecard) by :mod:`.governance`, from the forms of the issue's
output contract; a boosting run's trees and feature importance by :mod:`.boosting`
(its configuration is its boosting hyperparameters, ``metrics.json``'s ``params``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coordinator.app.report.boosting import (
    BoostingSection,
    FeatureImportance,
    read_boosting,
    read_feature_importance,
)
from coordinator.app.report.card import ModelCardSection, read_model_card
from coordinator.app.report.governance import (
    CalibrationSection,
    FairnessColumn,
    FeatureWoe,
    ScorecardRow,
    read_calibration,
    read_fairness,
    read_scorecard,
    read_woe_iv,
)
from coordinator.app.run_state import ScoreHistograms
from credit.messages import Refusal
from credit.metrics import CreditMetrics
from credit.model_card import CARD_FILE, SCORECARD_FILE

__all__ = [
    "BankPrivacy",
    "FinalMetrics",
    "Participation",
    "PrivacySection",
    "ReportContents",
    "RoundRow",
    "read_contents",
]


@dataclass(frozen=True)
class FinalMetrics:
    """The final pooled test metrics (``metrics.json``'s ``final``) and their round."""

    server_round: int | None
    metrics: CreditMetrics


@dataclass(frozen=True)
class RoundRow:
    """One round as ``metrics.json`` records it (metrics None: not scored)."""

    server_round: int
    auc: float | None
    ks: float | None
    loss: float | None
    train_loss: float | None
    banks: tuple[str, ...]
    refused: tuple[str, ...]
    dropped: tuple[str, ...]
    aborted: str | None
    max_epsilon_spent: float | None
    seconds: float | None

    @property
    def status(self) -> str:
        """``aborted``, ``scored`` or ``not evaluated``."""
        if self.aborted:
            return "aborted"
        return "scored" if self.auc is not None else "not evaluated"


@dataclass(frozen=True)
class Participation:
    """What each bank did in each round.

    ``cells[i][j]`` is bank ``banks[i]``'s part in round ``rounds[j]``: ``trained``,
    ``refused`` (its privacy budget), ``dropped`` (lost, timed out or dropped out of
    secure aggregation), ``aborted`` (the round was) or ``absent`` (not asked).
    """

    banks: tuple[str, ...]
    rounds: tuple[int, ...]
    cells: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class BankPrivacy:
    """One bank's privacy spend, from the ledger summary it last reported."""

    bank: str
    epsilon: float
    max_epsilon: float
    delta: float
    accountant: str
    releases: int
    signed: bool


@dataclass(frozen=True)
class PrivacySection:
    """Every budgeted bank's spend and every refusal (both empty: no bank had a budget).

    ``noise``: how the banks' DP noise was keyed when a simulation says so
    (``metrics.json``'s ``noise``: "reproducible from seed (research only)"); None
    otherwise.
    """

    banks: tuple[BankPrivacy, ...]
    refusals: tuple[str, ...]
    noise: str | None = None


@dataclass(frozen=True)
class ReportContents:
    """Everything the page shows; None (or empty) sections are left out.

    ``boosting`` and ``importance``: a boosting run's trees and feature importance;
    its ``config`` holds its boosting hyperparameters.
    """

    title: str
    status: str | None
    schema_name: str | None
    wall_seconds: float | None
    final: FinalMetrics | None
    final_missing: str | None
    config: tuple[tuple[str, str], ...]
    secure_aggregation: tuple[tuple[str, str], ...]
    privacy: PrivacySection | None
    rounds: tuple[RoundRow, ...]
    rounds_scored_on: str
    participation: Participation | None
    scores: ScoreHistograms | None
    calibration: CalibrationSection | None
    fairness: tuple[FairnessColumn, ...]
    woe_iv: tuple[FeatureWoe, ...]
    scorecard: tuple[ScorecardRow, ...]
    model_card: ModelCardSection | None
    boosting: BoostingSection | None = None
    importance: tuple[FeatureImportance, ...] = ()


def read_contents(metrics: Path, model: Path) -> ReportContents:
    """The report's sections from ``metrics.json`` and the model folder.

    Parameters
    ----------
    metrics : pathlib.Path
        The run's ``metrics.json``.
    model : pathlib.Path
        The run's model folder (``model_card.json``, and ``scorecard.csv`` if any);
        absent files leave their sections out.

    Raises
    ------
    ValueError
        A file holds something other than the form its writer gives it; the message
        names the file and the key.
    """
    document = _read_json(metrics)
    card_path = model / CARD_FILE
    scorecard_path = model / SCORECARD_FILE
    model_card = read_model_card(card_path) if card_path.is_file() else None
    scorecard = read_scorecard(scorecard_path) if scorecard_path.is_file() else ()
    importance = read_feature_importance(card_path) if card_path.is_file() else ()
    try:
        contents = _contents(
            document,
            default_title=metrics.parent.name,
            model_card=model_card,
            scorecard=scorecard,
        )
        boosting = read_boosting(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{metrics}: unexpected content ({type(exc).__name__}: {exc})") from exc
    if boosting is None:
        return contents
    return replace(
        contents, boosting=boosting, importance=importance, config=_boosting_config(document)
    )


def _boosting_config(document: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A boosting run's hyperparameters (``params``); an unset base score is the run's."""
    rows = []
    for key, value in (document.get("params") or {}).items():
        text = _text(value)
        if key == "base_score" and value is None:
            text = f"the banks' default rate: {float(document['base_score']):.4f}"
        rows.append((str(key), text))
    return tuple(rows)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def _contents(
    document: Mapping[str, Any],
    *,
    default_title: str,
    model_card: ModelCardSection | None,
    scorecard: tuple[ScorecardRow, ...],
) -> ReportContents:
    """The report's sections from ``metrics.json`` and what the model folder gave."""
    config = document.get("config") or {}
    rounds = tuple(_round(entry) for entry in document.get("rounds", []))
    histograms = document.get("score_histograms")
    calibration = document.get("calibration")
    return ReportContents(
        title=str(config.get("run-name") or default_title),
        status=document.get("status"),
        schema_name=(document.get("schema") or {}).get("name"),
        wall_seconds=_optional(document.get("wall_seconds")),
        final=_final(document.get("final") or {}, rounds, document.get("selection")),
        final_missing=_optional_text(document.get("final_missing")),
        config=tuple((str(key), _text(value)) for key, value in config.items()),
        secure_aggregation=tuple(
            (str(key), _text(value))
            for key, value in (document.get("secure_aggregation") or {}).items()
            if key != "costs"  # per-round counters: metrics.json's, not the report's
        ),
        privacy=_privacy(document) if "privacy" in document else None,
        rounds=rounds,
        rounds_scored_on=str(document.get("rounds_scored_on") or "test"),
        participation=_participation(document.get("participants") or {}, rounds),
        scores=ScoreHistograms.from_document(histograms) if histograms else None,
        calibration=read_calibration(calibration) if calibration else None,
        fairness=read_fairness(document.get("fairness") or {}),
        woe_iv=read_woe_iv(document.get("woe_iv") or {}),
        scorecard=scorecard,
        model_card=model_card,
    )


def _text(value: Any) -> str:
    """A configuration value as the page prints it (empty: ``""``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return '""'
    return str(value)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _final(
    final: Mapping[str, Any],
    rounds: Sequence[RoundRow],
    selection: Mapping[str, Any] | None = None,
) -> FinalMetrics | None:
    """The final metrics, with the round whose model they score (None: none was scored).

    That is the kept round (``selection``) of a run with validation parts, else the
    last scored round.
    """
    if not final:
        return None
    if selection:
        return FinalMetrics(
            server_round=int(selection["round"]), metrics=CreditMetrics.from_dict(final)
        )
    scored = [row.server_round for row in rounds if row.auc is not None]
    return FinalMetrics(
        server_round=scored[-1] if scored else None, metrics=CreditMetrics.from_dict(final)
    )


def _round(entry: Mapping[str, Any]) -> RoundRow:
    return RoundRow(
        server_round=int(entry["round"]),
        auc=_optional(entry.get("auc")),
        ks=_optional(entry.get("ks")),
        loss=_optional(entry.get("loss")),
        train_loss=_optional(entry.get("train_loss")),
        banks=tuple(entry.get("banks", ())),
        refused=tuple(entry.get("refused", ())),
        dropped=tuple(entry.get("dropped", ())),
        aborted=entry.get("aborted") or None,
        max_epsilon_spent=_optional(entry.get("max_epsilon_spent")),
        seconds=_optional(entry.get("seconds")),
    )


def _participation(
    participants: Mapping[str, Any], rounds: Sequence[RoundRow]
) -> Participation | None:
    """Each bank's part per round (None: no rounds)."""
    if not rounds:
        return None
    named = [*participants]
    for row in rounds:
        named += [bank for bank in (*row.banks, *row.refused, *row.dropped) if bank not in named]
    return Participation(
        banks=tuple(named),
        rounds=tuple(row.server_round for row in rounds),
        cells=tuple(tuple(_part(bank, row) for row in rounds) for bank in named),
    )


def _part(bank: str, row: RoundRow) -> str:
    if row.aborted:
        return "aborted"
    for part, banks in (("trained", row.banks), ("refused", row.refused), ("dropped", row.dropped)):
        if bank in banks:
            return part
    return "absent"


def _privacy(document: Mapping[str, Any]) -> PrivacySection:
    banks = tuple(
        BankPrivacy(
            bank=str(bank),
            epsilon=float(summary["epsilon"]),
            max_epsilon=float(summary["max_epsilon"]),
            delta=float(summary["delta"]),
            accountant=str(summary["accountant"]),
            releases=len(summary.get("events", ())),
            signed=bool(summary.get("signature")),
        )
        for bank, summary in (document.get("privacy") or {}).items()
    )
    refusals = tuple(
        Refusal.model_validate(refusal).text() for refusal in document.get("refusals", ())
    )
    noise = document.get("noise")
    return PrivacySection(
        banks=banks, refusals=refusals, noise=None if noise is None else str(noise)
    )
