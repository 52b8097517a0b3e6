"""Banks without files of their own: rows of the source file, settings in one shared file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from flwr.app import Context, RecordDict

from credit.errors import ConfigError
from credit.run_config import RunConfig
from participant.guard.bank import prepare_bank
from simulations.engine import SimulationPlan, plan_simulation
from simulations.settings import SIMULATION_FILE, PartitionSettings
from simulations.shared_plan import SHARED_PLAN_FILE, SharedPartitionPlan


def _plan(tmp_path: Path, source: Path, folder: str, *, write_bank_files: bool) -> SimulationPlan:
    config = RunConfig(rounds=1, out_dir=str(tmp_path / folder), seed=4)
    return plan_simulation(
        config,
        n_banks=3,
        partition=PartitionSettings(data=str(source)),
        write_bank_files=write_bank_files,
    )


@pytest.fixture
def source(tmp_path: Path, embedded_frame: pd.DataFrame) -> Path:
    path = tmp_path / "source.csv"
    embedded_frame.iloc[:1_800].to_csv(path, index=False)
    return path


def test_banks_without_files_read_the_same_rows_and_split_as_from_their_files(
    tmp_path: Path, source: Path
) -> None:
    shared = _plan(tmp_path, source, "shared", write_bank_files=False)
    files = _plan(tmp_path, source, "files", write_bank_files=True)

    assert not (tmp_path / "shared" / "banks").exists()
    assert {bank.data_path for bank in shared.banks} == {source.absolute()}
    for from_rows, from_file in zip(shared.banks, files.banks, strict=True):
        assert from_file.data_rows is None and from_file.data_path.parent.name == "banks"
        rows_bank = prepare_bank(from_rows.source(), from_rows.holdout)
        file_bank = prepare_bank(from_file.source(), from_file.holdout)
        assert rows_bank.split_digest == file_bank.split_digest
        for part in ("train", "validation", "test"):
            pd.testing.assert_frame_equal(getattr(rows_bank, part), getattr(file_bank, part))


def test_the_simulation_record_names_each_banks_rows_of_the_source(
    tmp_path: Path, source: Path
) -> None:
    plan = _plan(tmp_path, source, "shared", write_bank_files=False)

    document = json.loads((tmp_path / "shared" / SIMULATION_FILE).read_text())
    for entry, part in zip(document["banks"], plan.partitions, strict=True):
        assert entry["file"] == str(source.absolute())
        assert entry["file_rows"] == part.rows.tolist()
        assert entry["rows"] == part.rows.size


def test_rows_outside_the_source_file_are_refused_naming_the_file(
    tmp_path: Path, source: Path
) -> None:
    bank = _plan(tmp_path, source, "shared", write_bank_files=False).banks[0]
    beyond = bank.model_copy(update={"data_rows": (0, 1_800)})

    with pytest.raises(ConfigError, match=r"names rows 0\.\.1800; the file has 1800") as error:
        prepare_bank(beyond.source(), beyond.holdout)
    assert str(source) in str(error.value)


def _node(partition_id: int) -> Context:
    return Context(
        run_id=1,
        node_id=partition_id + 100,
        node_config={"partition-id": partition_id},
        state=RecordDict(),
        run_config={},
    )


def test_the_shared_plan_gives_each_node_its_bank(tmp_path: Path, source: Path) -> None:
    plan = _plan(tmp_path, source, "shared", write_bank_files=False)
    shared = SharedPartitionPlan.write(plan.banks, tmp_path / "shared")

    assert shared.path == (tmp_path / "shared" / SHARED_PLAN_FILE).absolute()
    assert [shared(_node(index)) for index in range(3)] == list(plan.banks)
    with pytest.raises(ConfigError, match="partition-id 3 outside the plan's 3 banks"):
        shared(_node(3))


def test_a_bank_settings_file_changed_during_the_run_is_refused_unread(
    tmp_path: Path, source: Path
) -> None:
    plan = _plan(tmp_path, source, "shared", write_bank_files=False)
    shared = SharedPartitionPlan.write(plan.banks, tmp_path / "shared")
    shared.path.write_bytes(b"not the banks")

    with pytest.raises(ConfigError, match="bank settings changed during the run"):
        shared(_node(0))


def test_monitoring_a_run_without_bank_files_reads_each_banks_rows_of_the_source(
    tmp_path: Path, source: Path
) -> None:
    from simulations.monitor import _bank_settings, _simulated_banks

    plan = _plan(tmp_path, source, "shared", write_bank_files=False)
    entries = _simulated_banks(tmp_path / "shared")

    for bank in plan.banks:
        monitored = _bank_settings(
            bank.bank_name,
            entries[bank.bank_name],
            tmp_path / "shared",
            source,
            None,
            plan.config,
        )
        assert (monitored.data_path, monitored.data_rows) == (bank.data_path, bank.data_rows)
        assert monitored.source() == bank.source()
