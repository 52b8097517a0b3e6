"""``experiment report``: AUC mean ± sd over seeds against each varied numeric option."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.errors import ConfigError
from simulations.experiments.report import (
    auc_summary,
    numeric_options,
    read_results,
    write_report,
)

HEADER = "run,seed,partition,epsilon,auc,ks,released_auc,released_ks,wall_seconds,peak_rss_mb,max_epsilon_spent,status\n"  # noqa: E501


def _results(folder: Path) -> Path:
    rows = []
    for seed in (0, 1):
        for partition in ("iid", "dirichlet"):
            for epsilon, auc in (("0.5", 0.60), ("1.0", 0.65), ("none", 0.72)):
                value = auc + seed * 0.02 + (0.05 if partition == "iid" else 0.0)
                rows.append(
                    f"h{seed}{partition}{epsilon},{seed},{partition},{epsilon},{value},0.3,,,1,1,,completed"
                )
    rows.append("hfailed,2,iid,0.5,,,,,1,1,,failed: error: x")
    (folder / "results.csv").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_summary_is_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    frame = read_results(_results(tmp_path))
    assert numeric_options(frame) == ["epsilon"]
    summary = auc_summary(frame, "epsilon")
    assert list(summary["line"]) == ["partition=dirichlet"] * 3 + ["partition=iid"] * 3
    iid = summary[summary["line"] == "partition=iid"]
    assert list(iid["option"])[:2] == [0.5, 1.0]
    assert math.isnan(list(iid["option"])[2])
    assert list(iid["auc_mean"]) == pytest.approx([0.66, 0.71, 0.78])
    assert list(iid["auc_sd"]) == pytest.approx([math.sqrt(0.0002)] * 3)
    assert list(iid["runs"]) == [2, 2, 2]  # the failed run is left out


def test_report_command_writes_a_png_per_numeric_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "report", str(_results(tmp_path))])
    assert result.exit_code == 0, result.output
    plot = tmp_path / "auc-vs-epsilon.png"
    assert result.stdout.strip() == f"plot: {plot}"
    assert matplotlib.image.imread(plot).shape[:2] == (495, 770)


def test_report_without_results_or_numeric_options_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path}: no results.csv")
    frame = pd.read_csv(_results(tmp_path) / "results.csv", dtype=str)
    frame.drop(columns="epsilon").to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ConfigError, match=r"no varied numeric option.*varied: seed, partition"):
        write_report(tmp_path)
