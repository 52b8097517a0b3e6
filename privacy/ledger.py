"""A bank's privacy ledger: every release about its records, persisted.

The ledger lives at the bank (a JSON-lines file next to its data) and is the single
source of truth for what the bank has spent: epsilon is always recomputed from it,
never stored as a running total. A restarted participant reopens the same file and
keeps its spend. Checks happen before commits: :meth:`PrivacyLedger.charge` refuses a
release that would pass ``max_epsilon`` and then leaves the file untouched.

Several processes may write one ledger (Flower runs messages of different runs
concurrently). Every write (:meth:`~PrivacyLedger.charge`,
:meth:`~PrivacyLedger.record_plan`, :meth:`~PrivacyLedger.bind_split`) locks the file,
re-reads it, checks against what is on disk, appends, syncs and unlocks, so two runs
can never both spend the same remaining budget. A torn last line (an interrupted
write) stops the bank with one line naming ``fedcredit privacy repair-ledger FILE``.

File format, one JSON object per line::

    {"type": "budget", "bank": "bank-1", "max_epsilon": 1.0, "delta": 4.2e-05}
    {"type": "split", "digest": "9f2c...", "fraction": 0.2}
    {"type": "plan", "run": "...", "kind": "dp-sgd", "noise_multiplier": 1.73, ...}
    {"type": "event", "run": "...", "rows": "train", "round": 1, "sample_rate": 0.0133, ...}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from privacy._ledger_file import (
    LedgerLine,
    RepairResult,
    append_lines,
    create_ledger_file,
    locked,
    parse_lines,
    repair_torn_line,
)
from privacy.accounting import ACCOUNTANT, DpEvent, epsilon_by_rows, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded, SplitChanged

__all__ = [
    "LedgerContents",
    "PlanKind",
    "PrivacyLedger",
    "RepairResult",
    "RunPlan",
    "SplitBinding",
    "read_ledger",
    "read_spent",
    "repair_ledger",
]

PlanKind = Literal["dp-sgd", "evaluation", "gbdt"]
_PLAN_KINDS: tuple[PlanKind, ...] = ("dp-sgd", "evaluation", "gbdt")


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """The noise calibration a bank fixed for one run (reused after a restart).

    Attributes
    ----------
    run : str
        The run's name.
    noise_multiplier, sample_rate, steps_per_round, max_grad_norm
        The mechanism of each planned release (as in :class:`DpEvent`).
    planned_rounds : int
        Releases the calibration covers: training rounds, or evaluations.
    n_train : int
        The bank's training rows when the plan was made (0: a plan written before
        ledgers recorded it).
    batch_size : int
        Expected Poisson batch size B of a DP-SGD step: ``sample_rate = B / n_train``
        (0 for evaluation plans and legacy plans).
    local_epochs : int
        Epochs E per round: ``steps_per_round = E * ceil(n_train / B)`` (0 for
        evaluation plans, legacy plans and plans in steps).
    kind : {"dp-sgd", "evaluation", "gbdt"}
        DP-SGD training (training rows), evaluation releases (test rows) or the tree
        levels of federated boosting (training rows; ``planned_rounds`` is levels).
    local_steps : int, default 0
        Steps S per round asked for instead of epochs: ``steps_per_round = S``
        (0: the plan is in epochs, or an evaluation plan).
    """

    run: str
    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    planned_rounds: int
    max_grad_norm: float
    n_train: int
    batch_size: int
    local_epochs: int
    kind: PlanKind = "dp-sgd"
    local_steps: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _PLAN_KINDS:
            raise ValueError(f"kind must be one of {_PLAN_KINDS}; got {self.kind!r}")
        for name in ("n_train", "batch_size", "local_epochs", "local_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.planned_rounds < 1 or self.steps_per_round < 1:
            raise ValueError("planned_rounds and steps_per_round must be >= 1")


@dataclass(frozen=True)
class SplitBinding:
    """The hold-out split a ledger is bound to: its digest and hold-out fraction."""

    digest: str
    fraction: float


@dataclass(frozen=True)
class LedgerContents:
    """A ledger file, parsed: its budget line, split, plans and events (file order)."""

    bank: str
    budget: PrivacyBudget
    split: SplitBinding | None
    plans: tuple[RunPlan, ...]
    events: tuple[DpEvent, ...]

    @property
    def delta(self) -> float:
        """The ledger's delta (always resolved in a ledger's budget line)."""
        if self.budget.delta is None:  # _contents refuses a budget line without delta
            raise LedgerError(f"the ledger of bank '{self.bank}' records no delta")
        return self.budget.delta

    def plan_for(self, run: str, kind: PlanKind = "dp-sgd") -> RunPlan | None:
        """The plan of ``kind`` fixed for ``run``, if any."""
        return next((p for p in self.plans if p.run == run and p.kind == kind), None)


class PrivacyLedger:
    """Append-only, persisted, locked record of a bank's DP releases.

    Parameters
    ----------
    path : pathlib.Path
        The ledger file; created with the budget line when missing.
    bank : str
        The bank's name; an existing file must belong to it.
    budget : PrivacyBudget
        The bank's budget with its delta resolved (:meth:`PrivacyBudget.for_rows`);
        an existing file must record the same one (a bank cannot raise its maximum
        by restarting with another flag).

    Raises
    ------
    LedgerError
        The file does not parse (line named; a torn last line names the repair
        command), belongs to another bank or records another budget.
    """

    def __init__(self, path: Path, *, bank: str, budget: PrivacyBudget) -> None:
        if budget.delta is None:
            raise ValueError(
                "the ledger needs the budget's delta resolved (PrivacyBudget.for_rows)"
            )
        self.delta: float = budget.delta
        self.path = path
        self.bank = bank
        self.budget = budget
        if not path.exists():
            create_ledger_file(path, {"type": "budget", "bank": bank, **budget.model_dump()})
        self._contents = self._checked(read_ledger(path))

    @property
    def events(self) -> tuple[DpEvent, ...]:
        """Every recorded release, oldest first (as of the last read or write)."""
        return self._contents.events

    @property
    def plans(self) -> tuple[RunPlan, ...]:
        """Every recorded run plan, oldest first."""
        return self._contents.plans

    @property
    def split(self) -> SplitBinding | None:
        """The hold-out split the ledger is bound to, if any yet."""
        return self._contents.split

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far: the larger of the two row sets' (see accounting)."""
        return epsilon_spent(self.events, self.delta)

    def refresh(self) -> None:
        """Re-read the file (other processes may have appended since)."""
        self._contents = self._checked(read_ledger(self.path))

    def plan_for(self, run: str, kind: PlanKind = "dp-sgd") -> RunPlan | None:
        """The calibration of ``kind`` fixed for ``run``, if any."""
        return self._contents.plan_for(run, kind)

    def record_plan(self, plan: RunPlan) -> None:
        """Persist the calibration of a run (once per run and kind).

        Raises
        ------
        LedgerError
            The run already has a plan of this kind (on disk, possibly written by
            another process since this ledger was read).
        """

        def first() -> bool:
            self._refuse_second_plan(plan)
            return True

        self._write(first, [_plan_entry(plan)])

    def bind_split(self, digest: str, fraction: float) -> None:
        """Bind the ledger to the bank's hold-out split at first use; refuse another later.

        Parameters
        ----------
        digest : str
            The split's commitment (hex), from the bank's salt and records.
        fraction : float
            The hold-out fraction, in (0, 1).

        Raises
        ------
        SplitChanged
            The ledger is bound to another split (both digests named).
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1); got {fraction}")

        def unbound() -> bool:
            bound = self._contents.split
            if bound is None:
                return True
            if bound.digest != digest or bound.fraction != fraction:
                recorded = f"{bound.digest} (fraction {bound.fraction:g})"
                raise SplitChanged(
                    path=self.path, recorded=recorded, requested=f"{digest} (fraction {fraction:g})"
                )
            return False

        self._write(unbound, [{"type": "split", "digest": digest, "fraction": fraction}])

    def charge(
        self, event: DpEvent, *, plan: RunPlan | None = None, at_most: int | None = None
    ) -> float:
        """Record ``event`` (and ``plan``, in the same write) if the budget allows it.

        The check is made against the file as it is under the lock, not against
        what this object read earlier. Returns the bank's epsilon after the event.

        Parameters
        ----------
        event : DpEvent
            The release.
        plan : RunPlan, optional
            The run's plan, recorded with the event (its first release).
        at_most : int, optional
            Refuse the event if its run already has this many events of its kind and
            sensitivity (``max_grad_norm``): how a bank keeps a run to its planned
            evaluations and to one governance release, whatever the budget allows.

        Raises
        ------
        PrivacyBudgetExceeded
            The event would take its row set's epsilon past ``max_epsilon``, or its
            run already made ``at_most`` such releases; nothing is recorded.
        LedgerError
            ``plan``'s run already has a plan of its kind, or ``event`` is a second
            set-up release (``gaussian-release``) of its run, or a second release of
            one boosting level (``gbdt-histogram`` of the same run and round); nothing
            is recorded.
        """
        entries = [_plan_entry(plan)] if plan is not None else []

        def allowed() -> bool:
            if plan is not None:
                self._refuse_second_plan(plan)
            self._refuse_second_setup_release(event)
            self._refuse_second_level(event)
            if at_most is not None:
                self._refuse_past(event, at_most)
            self._refuse_over_budget(event)
            return True

        self._write(allowed, [*entries, {"type": "event", **asdict(event)}])
        return self.epsilon

    def summary(self) -> dict[str, Any]:
        """The ledger as released with a bank's replies (re-read first).

        Keys: ``epsilon``, ``delta``, ``max_epsilon``, ``accountant``, ``events`` and
        ``plans`` (lists of their fields).
        """
        self.refresh()
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_epsilon": self.budget.max_epsilon,
            "accountant": ACCOUNTANT,
            "events": [asdict(event) for event in self.events],
            "plans": [asdict(plan) for plan in self.plans],
        }

    def _write(self, check: Callable[[], bool], entries: list[dict[str, Any]]) -> None:
        """Lock, re-read, ``check()`` (True: append ``entries``), sync, unlock."""
        with locked(self.path, exclusive=True) as (descriptor, data):
            self._contents = self._checked(_contents(self.path, parse_lines(self.path, data)))
            if not check():
                return
            append_lines(descriptor, entries)
            self._contents = self._checked(
                _contents(self.path, [*parse_lines(self.path, data), *_as_lines(entries)])
            )

    def _checked(self, contents: LedgerContents) -> LedgerContents:
        """``contents`` if they are this bank's ledger under this budget; else LedgerError."""
        if contents.bank != self.bank:
            raise LedgerError(
                f"{self.path}: ledger belongs to bank '{contents.bank}', not '{self.bank}'"
            )
        if contents.budget != self.budget:
            recorded = contents.budget
            raise LedgerError(
                f"{self.path}: ledger was opened with max_epsilon={recorded.max_epsilon}, "
                f"delta={recorded.delta}; a budget cannot change once spending started "
                "(start a new ledger for a new data set)"
            )
        return contents

    def _refuse_second_plan(self, plan: RunPlan) -> None:
        if self._contents.plan_for(plan.run, plan.kind) is not None:
            raise LedgerError(f"{self.path}: run '{plan.run}' already has a plan ({plan.kind})")

    def _refuse_second_setup_release(self, event: DpEvent) -> None:
        if event.kind != "gaussian-release" or not event.run:
            return
        if any(e.kind == event.kind and e.run == event.run for e in self.events):
            raise LedgerError(
                f"{self.path}: run '{event.run}' already made its set-up release; a run "
                "releases its feature statistics once (start a new run with a new name)"
            )

    def _refuse_second_level(self, event: DpEvent) -> None:
        if event.kind != "gbdt-histogram":
            return
        if any(
            e.kind == event.kind and (e.run, e.round) == (event.run, event.round)
            for e in self.events
        ):
            raise LedgerError(
                f"{self.path}: run '{event.run}' already released level {event.round}'s "
                "histograms; a level is released once"
            )

    def _refuse_past(self, event: DpEvent, at_most: int) -> None:
        made = sum(
            1
            for e in self.events
            if (e.run, e.kind, e.max_grad_norm) == (event.run, event.kind, event.max_grad_norm)
        )
        if made >= at_most:
            spent = epsilon_by_rows(self.events, self.delta)[event.rows]
            raise PrivacyBudgetExceeded(
                bank=self.bank,
                spent=spent,
                requested=spent,
                maximum=self.budget.max_epsilon,
                server_round=event.round,
                detail=(
                    f"run '{event.run}' already made its {made} planned {event.kind}(s) of "
                    f"sensitivity {event.max_grad_norm:.4g}; nothing more is released"
                ),
            )

    def _refuse_over_budget(self, event: DpEvent) -> None:
        before = epsilon_by_rows(self.events, self.delta)[event.rows]
        after = epsilon_by_rows([*self.events, event], self.delta)[event.rows]
        if after > self.budget.max_epsilon:
            raise PrivacyBudgetExceeded(
                bank=self.bank,
                spent=before,
                requested=after,
                maximum=self.budget.max_epsilon,
                server_round=event.round,
            )


def read_ledger(path: Path) -> LedgerContents:
    """Parse the ledger file at ``path`` (under a shared lock), whoever's it is.

    Raises
    ------
    LedgerError
        The file is missing or does not parse (line named); :class:`TornLedger`
        for a torn last line (with the repair command).
    """
    with locked(path, exclusive=False) as (_, data):
        return _contents(path, parse_lines(path, data))


def read_spent(path: Path) -> float:
    """Epsilon spent per an existing ledger file, under the budget its first line records.

    Raises
    ------
    LedgerError
        The file is unreadable or not a ledger (names the line).
    """
    contents = read_ledger(path)
    return epsilon_spent(contents.events, contents.delta)


def repair_ledger(path: Path) -> RepairResult:
    """Drop a torn last line of the ledger at ``path``, keeping ``<path>.bak``.

    Only a torn LAST line is repaired (a complete entry missing only its newline
    is completed, not dropped); the rest must parse as a ledger.

    Raises
    ------
    LedgerError
        Nothing to repair, anything else wrong with the file, or ``<path>.bak``
        exists already.
    """

    def check(file: Path, data: bytes) -> None:
        _contents(file, parse_lines(file, data))

    return repair_torn_line(path, check=check)


def _contents(path: Path, lines: list[LedgerLine]) -> LedgerContents:
    """A ledger's parsed lines as its contents; LedgerError naming the line otherwise."""
    if not lines or lines[0].entry.get("type") != "budget":
        raise LedgerError(f"{path}: line 1: the first line must be the budget")
    bank, budget = _budget(path, lines[0])
    split: SplitBinding | None = None
    plans: list[RunPlan] = []
    events: list[DpEvent] = []
    for line in lines[1:]:
        entry = dict(line.entry)
        kind = entry.pop("type", None)
        where = f"{path}: line {line.number}"
        try:
            if kind == "event":
                events.append(DpEvent(**entry))
            elif kind == "plan":
                plans.append(_plan(entry, plans, where))
            elif kind == "split":
                if split is not None:
                    raise LedgerError(f"{where}: a second split line; a ledger has one split")
                split = SplitBinding(digest=str(entry["digest"]), fraction=float(entry["fraction"]))
            else:
                raise LedgerError(f"{where}: unknown entry type {kind!r}")
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"{where}: not a {kind} entry ({exc})") from exc
    return LedgerContents(
        bank=bank, budget=budget, split=split, plans=tuple(plans), events=tuple(events)
    )


def _budget(path: Path, line: LedgerLine) -> tuple[str, PrivacyBudget]:
    head = line.entry
    try:
        budget = PrivacyBudget(max_epsilon=head["max_epsilon"], delta=head["delta"])
        bank = head["bank"]
    except (KeyError, ValueError) as exc:
        raise LedgerError(f"{path}: line {line.number}: not a budget line ({exc})") from exc
    if not isinstance(bank, str) or budget.delta is None:
        raise LedgerError(f"{path}: line {line.number}: the budget line needs a bank and a delta")
    return bank, budget


_LEGACY_PLAN_FIELDS = {"n_train": 0, "batch_size": 0, "local_epochs": 0}
"""Plan fields ledgers written before issue 12 lack (0: unknown, verify says so)."""


def _plan(entry: dict[str, Any], plans: Iterable[RunPlan], where: str) -> RunPlan:
    unknown = sorted(set(entry) - {field.name for field in fields(RunPlan)})
    if unknown:
        raise LedgerError(f"{where}: not a plan entry (unknown fields {unknown})")
    plan = RunPlan(**{**_LEGACY_PLAN_FIELDS, **entry})
    if any(p.run == plan.run and p.kind == plan.kind for p in plans):
        raise LedgerError(f"{where}: run '{plan.run}' has a second {plan.kind} plan")
    return plan


def _plan_entry(plan: RunPlan) -> dict[str, Any]:
    return {"type": "plan", **asdict(plan)}


def _as_lines(entries: list[dict[str, Any]]) -> list[LedgerLine]:
    return [LedgerLine(0, entry) for entry in entries]
