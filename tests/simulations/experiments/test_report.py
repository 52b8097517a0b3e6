"""``experiment report``: AUC mean ± sd over seeds against each varied numeric option."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.experiment import simulate_options
from simulations.experiments import load_grid, run_grid, write_results
from simulations.experiments.report import (
    auc_summary,
    numeric_options,
    read_results,
    write_report,
)

from .fakes import FakeRuns

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "grids"
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


def test_report_command_writes_a_png_per_numeric_option_and_the_page(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "report", str(_results(tmp_path))])
    assert result.exit_code == 0, result.output
    plot = tmp_path / "auc-vs-epsilon.png"
    assert result.stdout.strip().splitlines() == [
        f"plot: {plot}",
        f"report: {tmp_path / 'report.html'}",
    ]
    assert matplotlib.image.imread(plot).shape[:2] == (495, 770)


def test_report_without_results_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path}: no results.csv")


SELECTION_HEADER = (
    "run,seed,partition,alpha,banks,dropout_rate,rounds,epsilon,auc,ks,released_auc,"
    "released_ks,wall_seconds,peak_rss_mb,max_epsilon_spent,status\n"
)


def test_plots_are_drawn_for_the_numeric_options_the_grid_varied(tmp_path: Path) -> None:
    """AUC against epsilon, alpha, banks and dropout when varied; never seed, text or one value."""
    rows = [
        f"h{i},{i % 2},{partition},{alpha},{banks},{dropout},10,{epsilon},0.7,0.3,,,1,1,,completed"
        for i, (partition, alpha, banks, dropout, epsilon) in enumerate(
            [
                ("iid", 0.5, 5, 0.0, "none"),
                ("dirichlet", 0.1, 5, 0.0, "1.0"),
                ("dirichlet", 0.5, 10, 0.1, "0.5"),
                ("iid", 0.5, 10, 0.2, "none"),
            ]
        )
    ]
    (tmp_path / "results.csv").write_text(SELECTION_HEADER + "\n".join(rows) + "\n")
    frame = read_results(tmp_path)
    assert numeric_options(frame) == ["alpha", "banks", "dropout_rate", "epsilon"]
    files = write_report(tmp_path)
    assert [path.name for path in files.plots] == [
        "auc-vs-alpha.png", "auc-vs-banks.png", "auc-vs-dropout-rate.png", "auc-vs-epsilon.png",
    ]  # fmt: skip
    page = files.page.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 4
    for option in ("alpha", "banks", "dropout_rate", "epsilon"):
        assert f'alt="AUC against {option}"' in page


def test_page_without_numeric_options_still_lists_the_runs(tmp_path: Path) -> None:
    frame = pd.read_csv(_results(tmp_path) / "results.csv", dtype=str)
    frame.drop(columns="epsilon").to_csv(tmp_path / "results.csv", index=False)
    files = write_report(tmp_path)
    assert files.plots == ()
    page = files.page.read_text(encoding="utf-8")
    assert "No plot: the grid varies no numeric option" in page
    assert "<img" not in page
    assert page.count("<tr>") == 1 + 13  # the header and every run


def test_page_escapes_values_and_shows_each_run(tmp_path: Path) -> None:
    _results(tmp_path)
    with (tmp_path / "results.csv").open("a", encoding="utf-8") as stream:
        stream.write('hevil,3,"<script>alert(1)</script>",0.5,,,,,1,1,,failed: <b>x</b>\n')
    page = write_report(tmp_path).page.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<td class="failed">failed: &lt;b&gt;x&lt;/b&gt;</td>' in page
    assert '14 runs · 12 finished · <span class="failed">2 failed</span>' in page
    assert "<code>h0iid0.5</code>" in page
    assert '<td class="n">0.6500</td>' in page  # AUC with four decimals
    assert "http://" not in page and "https://" not in page


def test_the_privacy_utility_grid_is_plotted_against_epsilon(tmp_path: Path) -> None:
    grid = load_grid(EXAMPLES / "privacy_utility.toml", simulate_options())
    assert run_grid(grid.runs, tmp_path, FakeRuns(), jobs=2) == []
    write_results(grid, tmp_path)
    files = write_report(tmp_path)
    assert [path.name for path in files.plots] == ["auc-vs-epsilon.png"]  # alpha, banks: one value
    summary = auc_summary(read_results(tmp_path), "epsilon")
    assert summary["line"].nunique() == 6  # 3 splits x 2 models
    assert set(summary["runs"]) == {3}  # three seeds per point


def test_lines_are_named_by_the_other_options_that_change(tmp_path: Path) -> None:
    """A bundle fills in options it does not vary (alpha 0.5 for every split): no label."""
    grid = load_grid(EXAMPLES / "privacy_utility.toml", simulate_options())
    assert run_grid(grid.runs, tmp_path, FakeRuns(), jobs=2) == []
    write_results(grid, tmp_path)
    lines = set(auc_summary(read_results(tmp_path), "epsilon")["line"])
    assert "partition=iid, model=logreg, encoding=binned" in lines
    assert len(lines) == 6
    for constant in ("banks", "alpha", "partition_column"):  # 5, 0.5, EDUCATION in every run
        assert all(constant not in line for line in lines)
