"""Grid files: validation against simulate's real options, expansion order, stable hashes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pytest
import typer

from cli.experiment import simulate_options
from credit.errors import ConfigError
from simulations.experiments import OptionSpace, load_grid, option_space

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "grids"


@pytest.fixture(scope="module")
def space() -> OptionSpace:
    return simulate_options()


def _grid_file(folder: Path, text: str, name: str = "grid.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_expansion_order_is_the_product_first_key_slowest(
    tmp_path: Path, space: OptionSpace
) -> None:
    path = _grid_file(
        tmp_path,
        '[fixed]\nrounds = 2\n[vary]\nseed = [0, 1]\npartition = ["iid", "dirichlet"]\n'
        'epsilon = [0.5, "none"]\n',
    )
    grid = load_grid(path, space)
    assert grid.varied == ("seed", "partition", "epsilon")
    assert [tuple(run.varied.values()) for run in grid.runs] == [
        (0, "iid", 0.5), (0, "iid", None), (0, "dirichlet", 0.5), (0, "dirichlet", None),
        (1, "iid", 0.5), (1, "iid", None), (1, "dirichlet", 0.5), (1, "dirichlet", None),
    ]  # fmt: skip
    assert len({run.hash for run in grid.runs}) == 8
    assert all(len(run.hash) == 12 for run in grid.runs)
    assert grid.runs[0].options["rounds"] == 2
    assert grid.runs[0].options["banks"] == 5  # the simulate default, in the canonical form


def test_hash_ignores_key_order_spelling_and_number_form(
    tmp_path: Path, space: OptionSpace
) -> None:
    one = _grid_file(
        tmp_path, "[fixed]\nlocal-steps = 10\nrounds = 2\n[vary]\nepsilon = [1, 2]\n", "a.toml"
    )
    two = _grid_file(
        tmp_path, "[vary]\nepsilon = [1.0, 2.0]\n[fixed]\nrounds = 2\nlocal_steps = 10\n", "b.toml"
    )
    assert [r.hash for r in load_grid(one, space).runs] == [
        r.hash for r in load_grid(two, space).runs
    ]
    # Writing a default out changes nothing; changing any option changes the hash.
    three = _grid_file(
        tmp_path, "[fixed]\nbanks = 5\nlocal-steps = 10\nrounds = 2\n[vary]\nepsilon = [1, 2]\n"
    )
    assert [r.hash for r in load_grid(three, space).runs] == [
        r.hash for r in load_grid(one, space).runs
    ]
    four = _grid_file(tmp_path, "[fixed]\nlocal-steps = 10\nrounds = 3\n[vary]\nepsilon = [1, 2]\n")
    assert not {r.hash for r in load_grid(four, space).runs} & {
        r.hash for r in load_grid(one, space).runs
    }


def test_hash_is_stable_across_invocations(space: OptionSpace) -> None:
    """Pinned: a run's folder name must not change between fedcredit versions by accident."""
    grid = load_grid(EXAMPLES / "smoke.toml", space)
    assert [run.hash for run in grid.runs] == ["64f930c876bf", "fb9105142bfc"]


def test_run_arguments_are_simulate_flags(tmp_path: Path, space: OptionSpace) -> None:
    path = _grid_file(
        tmp_path,
        "[fixed]\nsecure-aggregation = false\nsecagg-threshold-fraction = 0.75\n"
        'data = "bank.csv"\n[vary]\nepsilon = [0.5, "none"]\n',
    )
    first, second = load_grid(path, space).runs
    data = str(tmp_path.resolve() / "bank.csv")
    assert space.arguments(first.given) == [
        "--data", data, "--epsilon", "0.5", "--secagg-threshold-fraction", "0.75",
        "--no-secure-aggregation",
    ]  # fmt: skip
    assert "--epsilon" not in space.arguments(second.given)


def test_bundles_vary_options_together(space: OptionSpace) -> None:
    grid = load_grid(EXAMPLES / "privacy_utility.toml", space)
    assert len(grid.runs) == 90
    assert grid.varied == (
        "seed", "partition", "banks", "alpha", "partition_column", "model", "encoding",
        "epsilon",
    )  # fmt: skip
    pairs = {(run.varied["model"], run.varied["encoding"]) for run in grid.runs}
    assert pairs == {("logreg", "binned"), ("mlp", "standardized")}
    run = grid.runs[7]
    assert run.varied == {
        "seed": 0, "partition": "iid", "banks": 5, "alpha": 0.5,
        "partition_column": "EDUCATION", "model": "mlp", "encoding": "standardized",
        "epsilon": 0.5,
    }  # fmt: skip
    assert space.arguments(run.given) == [
        "--banks", "5", "--batch-size", "256", "--encoding", "standardized", "--epsilon", "0.5",
        "--learning-rate", "0.05", "--local-epochs", "3", "--model", "mlp", "--partition", "iid",
        "--reproducible-noise", "--rounds", "10", "--seed", "0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fixed]\nrounds = 2\n[vary\n", "not valid TOML"),
        ("[sweep]\nseed = [1]\n", "'sweep': unknown table"),
        ("[vary]\nepsilonn = [1]\n", "[vary] 'epsilonn': not an option a grid can set"),
        ("[fixed]\nout = 'x'\n", "[fixed] 'out': not an option a grid can set"),
        ("[vary]\nseed = 3\n", "[vary] 'seed': must be a non-empty list; got 3"),
        ("[vary]\nseed = []\n", "[vary] 'seed': must be a non-empty list"),
        ("[vary]\nseed = [1, 2, 1]\n", "[vary] 'seed': 1 is listed twice"),
        ("[vary]\nepsilon = [1, 1.0]\n", "[vary] 'epsilon': 1.0 is listed twice"),
        ("[fixed]\nseed = 1\n[vary]\nseed = [1, 2]\n", "sets 'seed', also set elsewhere"),
        (
            "[vary]\npartition = ['iid', 'by-bank']\n",
            "[vary] 'partition': Input should be 'iid', 'dirichlet', 'column', 'natural-id', "
            "'pathological' or 'size'; got 'by-bank'",
        ),
        ("[fixed]\nrounds = 0\n", "[fixed] 'rounds': Input should be greater than or equal to 1"),
        ("[fixed]\nbanks = 2.5\n", "[fixed] 'banks': Input should be a valid integer"),
        ("[vary]\nrounds = ['none']\n", "[vary] 'rounds': Input should be a valid integer"),
        (
            "[vary]\nsetup = [{model = 'logreg'}, {modell = 'mlp'}]\n",
            "[vary] 'setup': 'modell': not an option a grid can set",
        ),
    ],
)
def test_bad_grid_is_one_line_naming_file_and_key(
    tmp_path: Path, space: OptionSpace, text: str, message: str
) -> None:
    path = _grid_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_grid(path, space)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_grid_file(tmp_path: Path, space: OptionSpace) -> None:
    with pytest.raises(ConfigError, match="cannot read the grid file"):
        load_grid(tmp_path / "nope.toml", space)


class Strategy(StrEnum):
    FEDAVG = "fedavg"
    FEDPROX = "fedprox"


def _before(
    rounds: Annotated[int, typer.Option(min=1)] = 10,
    secure_aggregation: Annotated[bool, typer.Option()] = True,
) -> None:
    """A command as it was."""


def _after(
    rounds: Annotated[int, typer.Option(min=1)] = 10,
    secure_aggregation: Annotated[bool, typer.Option()] = True,
    strategy: Annotated[Strategy, typer.Option()] = Strategy.FEDAVG,
    ray_address: Annotated[str | None, typer.Option("--ray-address", "-r")] = None,
    fast: Annotated[bool, typer.Option("--fast/--thorough")] = False,
) -> None:
    """The same command with options added (an enum, a declared spelling, an off switch)."""


def test_options_added_to_the_command_can_be_varied_and_leave_hashes_alone(
    tmp_path: Path,
) -> None:
    before, after = (option_space(command, exclude=()) for command in (_before, _after))
    path = _grid_file(tmp_path, "[vary]\nrounds = [2, 3]\nsecure-aggregation = [false]\n")
    assert [run.hash for run in load_grid(path, before).runs] == [
        run.hash for run in load_grid(path, after).runs
    ]
    path = _grid_file(
        tmp_path,
        '[fixed]\nray-address = "10.0.0.1:6379"\n[vary]\nstrategy = ["fedavg", "fedprox"]\n'
        "fast = [true, false]\n",
    )
    runs = load_grid(path, after).runs
    assert [after.arguments(run.given) for run in runs] == [
        ["--fast", "--ray-address", "10.0.0.1:6379", "--strategy", "fedavg"],
        ["--thorough", "--ray-address", "10.0.0.1:6379", "--strategy", "fedavg"],
        ["--fast", "--ray-address", "10.0.0.1:6379", "--strategy", "fedprox"],
        ["--thorough", "--ray-address", "10.0.0.1:6379", "--strategy", "fedprox"],
    ]
    with pytest.raises(ConfigError, match=r"'strategy': Input should be 'fedavg' or 'fedprox'"):
        load_grid(_grid_file(tmp_path, '[vary]\nstrategy = ["fedadam"]\n'), after)
