"""Check the privacy ledgers of a run (or a bank's own ledger file) independently.

``fedcredit privacy verify RUN_DIR`` reads every bank's ledger summary in the run's
``metrics.json`` and ``ledgers/<bank>.json`` and checks, for each:

* provenance: the summary is signed (Ed25519, :func:`~credit.messages.replies.
  ledger_summary_signed_bytes` of every other field) with the bank's audit key, and
  that key is the bank's: ``OUT/audit/<bank>.pub`` for a simulation, ``--bank-key
  BANK=PUBFILE`` for a deployment. Any field changed after the bank signed breaks
  the signature; an unsigned summary or an unpinned key is a failure;
* accounting: Google's ``dp_accounting`` (not Opacus, which fedcredit uses)
  recomputes epsilon per row set (training rows, test rows: parallel composition,
  see :mod:`privacy.accounting`) with its RDP accountant (same orders) and its PLD
  accountant; the reported epsilon must agree with the RDP value within
  :data:`TOLERANCE` (and equal fedcredit's own recomputation), and no row set may
  exceed ``max_epsilon``;
* mechanism: every event's run has a plan; each DP-SGD plan has q = B / n_train and
  S steps per round (a plan in local steps) or E * ceil(n_train / B) (in epochs);
  every event runs its plan's mechanism; one set-up release per run, whose
  sensitivity is sqrt(F) for the F model inputs of the run's schema (checked when
  the schema file ``metrics.json`` names is at hand with the hash it records, as
  in a simulation); a stability release (a later file's counts, ``later`` rows) is
  one step with q = 1 and needs no plan; delta <= the bank's declared delta (and
  1 / (10 n_train));
* completeness: every round ``metrics.json`` says the bank trained in has its
  DP-SGD event (an older summary replayed in place of the last one lacks some).

``fedcredit privacy verify --ledger FILE`` makes the accounting and mechanism
checks on a bank's own ledger file (:func:`verify_ledger`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from credit.audit import load_public_key
from credit.config_files import first_problem
from credit.errors import ConfigError, SchemaError
from credit.feature_stats import released_features
from credit.messages.replies import LedgerSummary, ledger_summary_signed_bytes
from credit.schema import load_schema
from privacy._verify_checks import RowEpsilon, independent_epsilons, ledger_problems
from privacy.accounting import ACCOUNTANT, DpEvent, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.ledger import RunPlan, read_ledger

__all__ = ["TOLERANCE", "BankCheck", "RowEpsilon", "verify_ledger", "verify_run"]

TOLERANCE = 0.02
_METRICS = "metrics.json"
_LEDGERS = "ledgers"
_SIMULATION = "simulation.json"
_AUDIT = "audit"
_COORDINATOR_LOG = "coordinator.jsonl"


@dataclass(frozen=True)
class BankCheck:
    """One bank's ledger (summary) as reported and as independently recomputed.

    Attributes
    ----------
    bank : str
        The bank.
    source : str
        Where the ledger was read: ``metrics.json``, ``ledgers/<bank>.json`` or a
        ledger file.
    reported : float
        The epsilon the ledger reports (for a ledger file: fedcredit's own value).
    independent_rdp, independent_pld : float
        The larger row set's epsilon per dp_accounting's RDP and PLD accountants.
    max_epsilon, delta : float
        The bank's budget.
    rows : tuple of RowEpsilon
        Each row set's independent epsilons.
    problems : tuple of str
        Every failed check, one line each.
    """

    bank: str
    source: str
    reported: float
    independent_rdp: float
    independent_pld: float
    max_epsilon: float
    delta: float
    rows: tuple[RowEpsilon, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def agrees(self) -> bool:
        """Reported and independent RDP epsilon agree within :data:`TOLERANCE`."""
        if self.independent_rdp == 0:
            return self.reported == 0
        return abs(self.reported - self.independent_rdp) <= TOLERANCE * self.independent_rdp

    @property
    def within_budget(self) -> bool:
        """No row set's independent epsilon passes the maximum (with rounding slack)."""
        limit = self.max_epsilon * (1 + 1e-6)
        return self.reported <= limit and all(min(r.rdp, r.pld) <= limit for r in self.rows)

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return self.agrees and self.within_budget and not self.problems


@dataclass(frozen=True)
class _Run:
    """What a run's outputs say about the banks, besides their summaries."""

    runs: frozenset[str] | None
    trained: Mapping[str, tuple[int, ...]]
    declared: Mapping[str, PrivacyBudget | None]
    keys: Mapping[str, tuple[Path, Ed25519PublicKey]] = field(default_factory=dict)
    setup_sensitivity: float | None = None


def verify_run(run_dir: Path, *, bank_keys: Mapping[str, Path] | None = None) -> list[BankCheck]:
    """Check every bank's ledger summary in ``run_dir`` (module docstring).

    Parameters
    ----------
    run_dir : pathlib.Path
        The run's output folder.
    bank_keys : mapping of str to pathlib.Path, optional
        Each bank's public audit key (PEM or OpenSSH); overrides
        ``run_dir/audit/<bank>.pub`` of a simulation.

    Raises
    ------
    ConfigError
        No readable ``metrics.json``, a ledger file or key that does not parse, no
        privacy ledgers at all, or a key for a bank the run does not have.
    """
    document = _read_json(run_dir / _METRICS, run_dir=run_dir)
    privacy = document.get("privacy") or {}
    if not isinstance(privacy, dict):
        raise ConfigError("'privacy' is not an object", source=str(run_dir / _METRICS))
    ledgers = {
        path.stem: _read_json(path, run_dir=run_dir)
        for path in sorted((run_dir / _LEDGERS).glob("*.json"))
    }
    banks = sorted(set(privacy) | set(ledgers))
    if not banks:
        raise ConfigError(
            "the run has no privacy ledgers (it was not run with --epsilon or --budgets)",
            source=str(run_dir / _METRICS),
        )
    run = _run_context(run_dir, document, banks, bank_keys or {})
    checks = []
    for bank in banks:
        in_metrics, in_file = privacy.get(bank), ledgers.get(bank)
        checks.append(_check(bank, _METRICS, in_metrics, run))
        file_check = _check(bank, f"{_LEDGERS}/{bank}.json", in_file, run)
        if in_metrics is not None and in_file is not None and in_metrics != in_file:
            file_check = _with_problem(file_check, "differs from the summary in metrics.json")
        checks.append(file_check)
    return checks


def verify_ledger(path: Path) -> BankCheck:
    """Check a bank's own ledger file: accounting and mechanism (module docstring).

    Raises
    ------
    privacy.errors.LedgerError
        The file is missing or does not parse (a torn last line names the repair).
    """
    contents = read_ledger(path)
    training_plans = [plan for plan in contents.plans if plan.kind in ("dp-sgd", "gbdt")]
    n_train = training_plans[-1].n_train if training_plans else 0
    problems = ledger_problems(
        contents.events, contents.plans, n_train=n_train, delta=contents.delta
    )
    rows = independent_epsilons(contents.events, contents.delta)
    return BankCheck(
        bank=contents.bank,
        source=str(path),
        reported=epsilon_spent(contents.events, contents.delta),
        independent_rdp=max(r.rdp for r in rows),
        independent_pld=max(r.pld for r in rows),
        max_epsilon=contents.budget.max_epsilon,
        delta=contents.delta,
        rows=rows,
        problems=tuple(problems),
    )


def _check(bank: str, source: str, raw: object, run: _Run) -> BankCheck:
    """One summary (as read from ``source``) checked; its problems listed."""
    if raw is None:
        return _failed(bank, source, "no ledger summary of this bank here")
    if not isinstance(raw, dict):
        return _failed(bank, source, "not a ledger summary (not an object)")
    try:
        summary = LedgerSummary.from_document(bank, raw)
    except ValidationError as exc:
        return _failed(bank, source, f"not a ledger summary ({first_problem(exc)})")
    problems = (
        ["has a 'bank' field (the bank is the file's or key's name)"] if "bank" in raw else []
    )
    problems += _signature_problems(bank, raw, summary, run.keys.get(bank))
    events, plans = _events_and_plans(summary, problems)
    problems += ledger_problems(events, plans, n_train=summary.n_train, delta=summary.delta)
    problems += _budget_problems(summary, events, run.declared.get(bank))
    problems += _missing_rounds(events, run.runs, run.trained.get(bank, ()))
    problems += _sensitivity_problems(events, run)
    rows = independent_epsilons(events, summary.delta)
    return BankCheck(
        bank=bank,
        source=source,
        reported=summary.epsilon,
        independent_rdp=max(r.rdp for r in rows),
        independent_pld=max(r.pld for r in rows),
        max_epsilon=summary.max_epsilon,
        delta=summary.delta,
        rows=rows,
        problems=tuple(problems),
    )


def _signature_problems(
    bank: str,
    raw: dict[str, Any],
    summary: LedgerSummary,
    pinned: tuple[Path, Ed25519PublicKey] | None,
) -> list[str]:
    if summary.key is None or summary.signature is None:
        return [
            "unsigned: the bank keeps no audit key, so nothing shows the summary is the "
            "bank's (give the bank an audit log)"
        ]
    try:
        key_bytes = base64.b64decode(summary.key, validate=True)
        public = Ed25519PublicKey.from_public_bytes(key_bytes)
        public.verify(
            base64.b64decode(summary.signature, validate=True),
            ledger_summary_signed_bytes({**raw, "bank": bank}),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        return ["signature does not match: the summary was changed after the bank signed it"]
    if pinned is None:
        return [
            "the bank's key is not pinned: pass --bank-key BANK=PUBFILE (the bank's published "
            "audit key)"
        ]
    path, expected = pinned
    if expected.public_bytes(Encoding.Raw, PublicFormat.Raw) != key_bytes:
        return [f"signed with another key than the bank's ({path})"]
    return []


def _events_and_plans(
    summary: LedgerSummary, problems: list[str]
) -> tuple[list[DpEvent], list[RunPlan]]:
    """The summary's events and plans as the accountant's types (bad ones named)."""
    events, plans = [], []
    for number, event in enumerate(summary.events, 1):
        try:
            events.append(DpEvent(**event.model_dump()))
        except ValueError as exc:
            problems.append(f"event {number}: {exc}")
    for number, plan in enumerate(summary.plans, 1):
        try:
            plans.append(RunPlan(**plan.model_dump()))
        except ValueError as exc:
            problems.append(f"plan {number}: {exc}")
    return events, plans


def _budget_problems(
    summary: LedgerSummary, events: list[DpEvent], declared: PrivacyBudget | None
) -> list[str]:
    problems = []
    if summary.accountant != ACCOUNTANT:
        problems.append(f"accountant '{summary.accountant}': fedcredit reports '{ACCOUNTANT}'")
    own = epsilon_spent(events, summary.delta)
    if not math.isclose(summary.epsilon, own, rel_tol=1e-9, abs_tol=1e-12):
        problems.append(f"reported epsilon {summary.epsilon:.6g} is not its events' {own:.6g}")
    if declared is not None:
        if not math.isclose(summary.max_epsilon, declared.max_epsilon, rel_tol=1e-12):
            problems.append(
                f"max_epsilon {summary.max_epsilon:g}, the bank declared {declared.max_epsilon:g}"
            )
        if declared.delta is not None and summary.delta > declared.delta:
            problems.append(f"delta {summary.delta:.3g} > the declared {declared.delta:.3g}")
    return problems


def _missing_rounds(
    events: list[DpEvent], runs: frozenset[str] | None, trained: tuple[int, ...]
) -> list[str]:
    """Rounds the bank trained in (per metrics.json) without a DP-SGD event of this run."""
    if not trained:
        return []
    training = [event for event in events if event.kind == "dp-sgd"]
    if runs is None:  # no run name nor coordinator log: the run of the latest training event
        runs = frozenset(event.run for event in training[-1:])
    charged = {event.round for event in training if event.run in runs}
    missing = [server_round for server_round in trained if server_round not in charged]
    if not missing:
        return []
    named = ", ".join(sorted(runs)) or "?"
    return [
        f"no DP-SGD event for round(s) {missing} of run {named}, in which metrics.json says "
        "the bank trained (an older summary?)"
    ]


def _run_context(
    run_dir: Path, document: dict[str, Any], banks: list[str], bank_keys: Mapping[str, Path]
) -> _Run:
    unknown = sorted(set(bank_keys) - set(banks))
    if unknown:
        raise ConfigError(
            f"--bank-key names bank '{unknown[0]}', which has no ledger summary in the run "
            f"(banks: {', '.join(banks)})",
            source=str(run_dir),
        )
    simulation = _simulation_budgets(run_dir)
    keys = {}
    for bank in banks:
        path = bank_keys.get(bank)
        if path is None and simulation is not None:
            candidate = run_dir / _AUDIT / f"{_file_stem(bank)}.pub"
            path = candidate if candidate.is_file() else None
        if path is not None:
            keys[bank] = (path, load_public_key(path))
    return _Run(
        runs=_runs(run_dir, document),
        trained=_trained_rounds(document),
        declared=simulation or {},
        keys=keys,
        setup_sensitivity=_setup_sensitivity(document),
    )


def _setup_sensitivity(document: dict[str, Any]) -> float | None:
    """sqrt(F) of the run's schema, when its file is at hand with the recorded hash."""
    config, recorded = document.get("config"), document.get("schema")
    if not isinstance(config, dict) or not isinstance(recorded, dict):
        return None
    path = config.get("schema")
    try:
        schema = load_schema(path if isinstance(path, str) and path else None)
    except (SchemaError, OSError):
        return None
    if schema.schema_hash() != recorded.get("sha256"):
        return None
    return math.sqrt(released_features(schema))


def _sensitivity_problems(events: list[DpEvent], run: _Run) -> list[str]:
    """This run's set-up releases whose sensitivity is not sqrt(F) of its schema."""
    expected = run.setup_sensitivity
    if expected is None or run.runs is None:
        return []
    return [
        f"set-up release of run '{event.run}': sensitivity {event.max_grad_norm:.6g}, but the "
        f"run's schema has {round(expected**2)} model inputs (sqrt: {expected:.6g})"
        for event in events
        if event.kind == "gaussian-release"
        and event.run in run.runs
        and not math.isclose(event.max_grad_norm, expected, rel_tol=1e-12)
    ]


def _simulation_budgets(run_dir: Path) -> dict[str, PrivacyBudget | None] | None:
    """Each simulated bank's declared budget (None: not a simulation's folder)."""
    path = run_dir / _SIMULATION
    if not path.is_file():
        return None
    document = _read_json(path, run_dir=run_dir)
    try:
        return {
            str(bank["name"]): None
            if bank.get("budget") is None
            else PrivacyBudget.model_validate(bank["budget"])
            for bank in document["banks"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"not a simulation record ({exc})", source=str(path)) from exc


def _runs(run_dir: Path, document: dict[str, Any]) -> frozenset[str] | None:
    """The names the banks filed this run under: its run name, or the coordinator log's."""
    config = document.get("config")
    name = config.get("run-name") if isinstance(config, dict) else None
    if isinstance(name, str) and name:
        return frozenset({name})
    runs = set()
    log = run_dir / _AUDIT / _COORDINATOR_LOG
    if log.is_file():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if entry["event"] in ("run-start", "run-resume"):
                    runs.add(str(entry["data"]["run"]))
            except (ValueError, KeyError, TypeError):
                continue
    return frozenset(runs) or None


def _trained_rounds(document: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    trained: dict[str, list[int]] = {}
    rounds = document.get("rounds")
    for entry in rounds if isinstance(rounds, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("banks"), list):
            continue
        if not isinstance(entry.get("round"), int):
            continue
        for bank in entry["banks"]:
            trained.setdefault(str(bank), []).append(entry["round"])
    return {bank: tuple(rounds) for bank, rounds in trained.items()}


def _file_stem(bank: str) -> str:
    """A simulated bank's file name (as ``simulations.engine`` names its files)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in bank)


def _read_json(path: Path, *, run_dir: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        if path.name == _METRICS:
            raise ConfigError(
                "no metrics.json; pass a run's output folder", source=str(run_dir)
            ) from exc
        raise ConfigError("file not found", source=str(path)) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable {path.name} ({exc})", source=str(path)) from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name} is not a JSON object", source=str(path))
    return document


def _failed(bank: str, source: str, problem: str) -> BankCheck:
    nan = math.nan
    return BankCheck(bank, source, nan, nan, nan, nan, nan, problems=(problem,))


def _with_problem(check: BankCheck, problem: str) -> BankCheck:
    return replace(check, problems=(*check.problems, problem))
