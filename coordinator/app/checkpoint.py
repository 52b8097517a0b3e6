"""The coordinator's checkpoint: everything needed to continue a run after a crash.

Right after round r's aggregation the coordinator writes ``OUT/checkpoint/``: the
global model's arrays (``arrays-<r>.npz``) and a JSON state (``state.json``: the
completed round, the arrays file's name, encoder, model spec, banks, every round's
results, privacy ledgers and refusals, the *pending* round, the score histograms of
the last round scored, for the model report, the last model's calibration and
fairness report once it came in, the WoE/IV tables of the set-up release, and with
validation parts the best round so far, whose model is kept in ``best-<r>.npz``, and
the selected model's final evaluation once it came in, or why it is missing: a
resumed run never asks it again; and a server optimiser's moments, in
``optimizer-<r>.npz``). Round
r's metrics come in one exchange later (with round r+1's train replies, or the final
evaluate exchange), so until then round r is pending: everything of its result but
the metrics. When they come in, the checkpoint is written again with round r among the
results. Saving before the next round is sent means a resumed run never trains a
round again that the banks already trained and charged (their replay store keeps
only their latest round per run); it asks for the pending evaluation in its first
train message (or its final evaluate exchange).

The arrays go to a new file first; then ``state.json`` is written to a temporary
name, fsynced and renamed over the old one, which is the moment the checkpoint moves
on; only then is the previous arrays file removed. A crash at any point leaves a
``state.json`` whose arrays file is whole. Resuming loads it and continues at the
next round; FedAvg and FedProx keep no other strategy state between rounds, FedAdam,
FedYogi and FedAvgM their moments (a checkpoint without them loads with none). Checkpoints of
version 2 (written before rounds could be pending) still load, with none pending;
checkpoints written before the final score histograms were kept load without them.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np
from flwr.app import Array, ArrayRecord

from coordinator.app.run_state import (
    BankInfo,
    BestRound,
    PendingRound,
    RoundResult,
    RunState,
    ScoreHistograms,
    SelectedModel,
)
from coordinator.app.server_optimizer import OptimizerState
from credit.durable import write_durably
from credit.encoding import FeatureEncoder
from credit.errors import ConfigError
from credit.messages import LedgerSummary, Refusal
from credit.metrics import CreditMetrics
from credit.model_spec import ModelSpec
from credit.run_config import RunConfig
from credit.schema import DatasetSchema, load_schema

__all__ = ["CHECKPOINT_DIR", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoint"
_STATE = "state.json"
_VERSION = 3  # 3: the pending round (2: typed refusals and ledgers, arrays file named)
_LOADS = frozenset({2, _VERSION})


def _arrays_bytes(arrays: ArrayRecord) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *[arrays[name].numpy() for name in arrays])
    return buffer.getvalue()


def save_checkpoint(out_dir: Path, state: RunState, completed_round: int) -> Path:
    """Write the state after ``completed_round`` (the last round trained); return the folder."""
    folder = out_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    arrays_file = f"arrays-{completed_round}.npz"
    from credit.woe_binning import woe_iv_document

    write_durably(folder / arrays_file, _arrays_bytes(state.arrays))
    best = state.best
    best_file = None if best is None else f"best-{best.server_round}.npz"
    if best is not None and best_file is not None:
        write_durably(folder / best_file, _arrays_bytes(best.arrays))
    optimizer = _save_optimizer(folder, state, completed_round)
    document = {
        "version": _VERSION,
        "completed_round": completed_round,
        "arrays_file": arrays_file,
        "schema_hash": state.schema.schema_hash(),
        "encoder": state.encoder.model_dump_json(),
        "spec": state.spec.model_dump_json(),
        "array_names": list(state.arrays),
        "banks": [asdict(bank) for bank in state.banks],
        "rounds": [_round_to_json(result) for result in state.rounds],
        "privacy": state.privacy_document(),
        "refusals": state.refusals_document(),
        "pending": None if state.pending is None else asdict(state.pending),
        "final_scores": None if state.final_scores is None else state.final_scores.document(),
        "governance": state.governance,
        "woe_iv": woe_iv_document(state.woe),
        "best": None
        if best is None
        else {"round": best.server_round, "auc": best.auc, "arrays_file": best_file},
        "selected": None if state.selected is None else _selected_to_json(state.selected),
        "stopped_early": state.stopped_early,
        "final_missing": state.final_missing,
        "server_optimizer": optimizer,
    }
    write_durably(folder / _STATE, json.dumps(document, indent=1).encode())
    kept = (arrays_file, best_file, None if optimizer is None else optimizer["arrays_file"])
    stale_files = [*folder.glob("arrays-*.npz"), *folder.glob("best-*.npz")]
    for stale in [*stale_files, *folder.glob("optimizer-*.npz")]:
        if stale.name not in kept:
            stale.unlink()
    return folder


def _save_optimizer(folder: Path, state: RunState, completed_round: int) -> dict[str, Any] | None:
    """Write the server optimiser's moments; their entry in ``state.json`` (None: none)."""
    if state.server_optimizer is None:
        return None
    flat = state.server_optimizer.flat()
    arrays_file = f"optimizer-{completed_round}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, *flat.values())
    write_durably(folder / arrays_file, buffer.getvalue())
    return {"arrays_file": arrays_file, "names": list(flat)}


def _optimizer_from_json(folder: Path, data: dict[str, Any] | None) -> OptimizerState | None:
    """The server optimiser's moments (None: none kept, or an older checkpoint)."""
    if data is None:
        return None
    path = folder / Path(data["arrays_file"]).name
    with np.load(path, allow_pickle=False) as saved:
        flat = {name: saved[f"arr_{index}"] for index, name in enumerate(data["names"])}
    return OptimizerState.from_flat(flat)


def _selected_to_json(selected: SelectedModel) -> dict[str, Any]:
    data = asdict(selected)
    data["metrics"] = selected.metrics.as_dict() if selected.metrics is not None else None
    return data


def _selected_from_json(data: dict[str, Any] | None) -> SelectedModel | None:
    if data is None:
        return None
    fields = dict(data)
    metrics = data["metrics"]
    fields["metrics"] = CreditMetrics.from_dict(metrics) if metrics is not None else None
    return SelectedModel(**fields)


def _best_from_json(
    folder: Path, data: dict[str, Any] | None, names: list[str]
) -> BestRound | None:
    """The best round so far and its model (None: none yet, or an older checkpoint)."""
    if data is None:
        return None
    arrays = _load_arrays(folder / Path(data["arrays_file"]).name, names)
    return BestRound(server_round=int(data["round"]), auc=float(data["auc"]), arrays=arrays)


def load_checkpoint(out_dir: Path, config: RunConfig) -> tuple[RunState, int]:
    """The saved state and its last completed (trained) round.

    Raises
    ------
    ConfigError
        No checkpoint in ``out_dir``, an unreadable one, or one made with another schema
        or checkpoint version.
    """
    folder = out_dir / CHECKPOINT_DIR
    state_path = folder / _STATE
    if not state_path.is_file():
        raise ConfigError(
            f"no checkpoint to resume from in {folder} (a run writes one after each round)",
            source="--resume",
        )
    try:
        document = json.loads(state_path.read_text(encoding="utf-8"))
        version, schema_hash = document.get("version"), document.get("schema_hash")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"checkpoint {folder} is unreadable: {exc}", source="--resume") from exc
    schema = load_schema(config.schema_file or None)
    if version not in _LOADS or schema_hash != schema.schema_hash():
        raise ConfigError(
            f"checkpoint {folder} was made with another schema or version; "
            "resume with the run's original configuration",
            source="--resume",
        )
    try:
        arrays_path = folder / Path(document["arrays_file"]).name
        arrays = _load_arrays(arrays_path, document["array_names"])
        state = _state_from(document, config, schema, arrays)
        state.best = _best_from_json(folder, document.get("best"), document["array_names"])
        state.selected = _selected_from_json(document.get("selected"))
        state.stopped_early = document.get("stopped_early")
        state.final_missing = document.get("final_missing")
        state.server_optimizer = _optimizer_from_json(folder, document.get("server_optimizer"))
        completed = int(document["completed_round"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, BadZipFile) as exc:
        raise ConfigError(f"checkpoint {folder} is unreadable: {exc}", source="--resume") from exc
    return state, completed


def _load_arrays(path: Path, names: list[str]) -> ArrayRecord:
    with np.load(path, allow_pickle=False) as saved:
        return ArrayRecord({name: Array(saved[f"arr_{index}"]) for index, name in enumerate(names)})


def _state_from(
    document: dict[str, Any], config: RunConfig, schema: DatasetSchema, arrays: ArrayRecord
) -> RunState:
    """The run state a checkpoint document describes (errors: malformed document)."""
    from credit.woe_binning import tables_from_document

    return RunState(
        config=config,
        schema=schema,
        encoder=FeatureEncoder.model_validate_json(document["encoder"]),
        spec=ModelSpec.model_validate_json(document["spec"]),
        banks=[_bank(bank) for bank in document["banks"]],
        arrays=arrays,
        rounds=[_round_from_json(result) for result in document["rounds"]],
        privacy={
            bank: LedgerSummary.from_document(bank, summary)
            for bank, summary in document["privacy"].items()
        },
        refusals=[Refusal.model_validate(refusal) for refusal in document["refusals"]],
        pending=_pending_from_json(document.get("pending")),
        final_scores=_final_scores_from_json(document.get("final_scores")),
        governance=document.get("governance"),
        woe=tables_from_document(document.get("woe_iv") or {}),
    )


def _bank(data: dict[str, Any]) -> BankInfo:
    """A bank of a checkpoint (version 3 checkpoints also kept its held-out row count)."""
    return BankInfo(name=data["name"], node_id=data["node_id"], n_train=data["n_train"])


def _round_to_json(result: RoundResult) -> dict[str, Any]:
    data = asdict(result)
    data["metrics"] = result.metrics.as_dict() if result.metrics is not None else None
    return data


def _round_from_json(data: dict[str, Any]) -> RoundResult:
    fields = dict(data)
    metrics = data["metrics"]
    fields["metrics"] = CreditMetrics.from_dict(metrics) if metrics is not None else None
    for name in ("banks", "refused", "dropped"):
        fields[name] = tuple(data[name])
    return RoundResult(**fields)


def _final_scores_from_json(data: dict[str, Any] | None) -> ScoreHistograms | None:
    """The final score histograms (None: no round scored yet, or an older checkpoint)."""
    return None if data is None else ScoreHistograms.from_document(data)


def _pending_from_json(data: dict[str, Any] | None) -> PendingRound | None:
    if data is None:
        return None
    fields = dict(data)
    for name in ("banks", "refused", "dropped"):
        fields[name] = tuple(data[name])
    return PendingRound(**fields)
