"""The bank's side of federated boosting against a malicious coordinator.

Each attack is refused (the bank's state unchanged: the honest next level still gets
the exact answer) or charged to the bank's ledger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from credit.gbdt import GRADIENT_SCALE, base_margin, histograms, quantise_gradients
from credit.messages.gbdt import LevelOrders, SplitOrder
from participant.guard.gbdt_bank import GbdtBank, GbdtPolicy, LevelRefused
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger
from privacy.verify import verify_ledger

ROWS, FEATURES, BINS = 60, 3, 5  # four regular bins and the missing bin
MARGIN = base_margin(0.3)
ROOT_SPLIT = SplitOrder(node=0, feature=1, split_bin=2, default_left=True)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)  # test data only
    codes = rng.integers(0, BINS, size=(ROWS, FEATURES)).astype(np.uint8)
    labels = rng.integers(0, 2, size=ROWS)
    return codes, labels


def _bank(policy: GbdtPolicy | None = None, ledger: PrivacyLedger | None = None) -> GbdtBank:
    codes, labels = _data()
    return GbdtBank(
        codes=codes, labels=labels, n_bins=BINS, run="boost-1", policy=policy, ledger=ledger
    )


def _orders(tree: int = 0, depth: int = 0, **changes: object) -> LevelOrders:
    fields: dict[str, object] = {
        "tree": tree, "depth": depth, "n_trees": 3, "max_depth": 2, "base_margin": MARGIN,
    }  # fmt: skip
    if depth > 0:
        fields["nodes"] = (1, 2)  # both children of the root split, unless changed
    fields.update(changes)
    return LevelOrders.model_validate(fields)


def _expected(nodes: np.ndarray, open_nodes: tuple[int, ...]) -> np.ndarray:
    codes, labels = _data()
    quantised = quantise_gradients(np.full(ROWS, MARGIN), labels)
    return histograms(codes, quantised.gradients, quantised.hessians, nodes, open_nodes, BINS)


def _after_root_split() -> np.ndarray:
    codes, _ = _data()
    code = codes[:, 1].astype(np.int64)
    left = np.where(code == BINS - 1, True, code < 2)
    return np.where(left, 1, 2).astype(np.int64)


def test_a_level_is_the_bank_s_exact_histogram_of_the_asked_open_nodes() -> None:
    bank, other = _bank(), _bank()

    root = bank.level(_orders())
    children = bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))
    other.level(_orders())
    one_child = other.level(_orders(depth=1, splits=(ROOT_SPLIT,), nodes=(2,)))

    assert root.nodes == (0,) and children.nodes == (1, 2) and one_child.nodes == (2,)
    np.testing.assert_array_equal(one_child.histograms, children.histograms[1:])
    np.testing.assert_array_equal(root.histograms, _expected(np.zeros(ROWS, np.int64), (0,)))
    np.testing.assert_array_equal(children.histograms, _expected(_after_root_split(), (1, 2)))
    assert root.event is None


@pytest.mark.parametrize(
    ("attack", "problem"),
    [
        ({"depth": 2}, "outside the announced 3 trees of depth 2"),
        ({"depth": 1, "max_depth": 3}, "announced 3 trees of depth 2; this request announces 3"),
        ({"depth": 0}, r"answers \(tree 0, depth 1\) or \(tree 1, depth 0\); got \(0, 0\)"),
        ({"tree": 2, "depth": 0}, r"got \(2, 0\)"),
        (
            {
                "depth": 1,
                "splits": (SplitOrder(node=5, feature=0, split_bin=1, default_left=True),),
            },
            r"a split of node 5, which is not open",
        ),
        (
            {
                "depth": 1,
                "splits": (SplitOrder(node=0, feature=7, split_bin=1, default_left=True),),
            },
            "on feature 7, bin 1: the bank has 3 features",
        ),
        ({"depth": 1, "splits": (ROOT_SPLIT, ROOT_SPLIT)}, "a node is split twice"),
        ({"depth": 1, "splits": ()}, "no node of tree 0 is open at depth 1"),
        ({"tree": 1, "depth": 0, "leaves": {1: 0.1}}, r"must cover its leaves \[0\]"),
        ({"depth": 1, "splits": (ROOT_SPLIT,), "leaves": {0: 0.1}}, "leaf values come only"),
        ({"depth": 1, "splits": (ROOT_SPLIT,), "nodes": (5,)}, r"asks for \[5\]"),
        ({"depth": 1, "splits": (ROOT_SPLIT,), "nodes": (0,)}, r"open nodes are \[1, 2\]"),
        ({"depth": 1, "splits": (ROOT_SPLIT,), "nodes": (1, 1)}, r"asks for \[1, 1\]"),
        ({"tree": 1, "depth": 0, "leaves": {0: 0.1}, "nodes": (1,)}, r"asks for \[1\]"),
    ],
)
def test_a_forged_or_out_of_order_level_is_refused_and_changes_nothing(
    attack: dict[str, object], problem: str
) -> None:
    """Extra levels, a repeated or skipped level, another ensemble, splits of nodes that
    are not open (an arbitrary node set), forged splits and leaves: all refused."""
    bank = _bank()
    bank.level(_orders())

    with pytest.raises(LevelRefused, match=problem):
        bank.level(_orders(**attack))

    honest = bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))
    np.testing.assert_array_equal(honest.histograms, _expected(_after_root_split(), (1, 2)))


def test_the_first_level_must_be_the_root_and_the_ensemble_within_the_policy() -> None:
    with pytest.raises(LevelRefused, match=r"a run starts at \(tree 0, depth 0\)"):
        _bank().level(_orders(depth=1, splits=(ROOT_SPLIT,)))
    with pytest.raises(LevelRefused, match="exceed the bank's policy"):
        _bank(GbdtPolicy(max_trees=2)).level(_orders())


def test_a_tree_ends_with_its_leaf_values_added_to_the_margins() -> None:
    bank = _bank()
    bank.level(_orders())
    bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))

    second = bank.level(_orders(tree=1, leaves={1: 0.25, 2: -0.5}))

    codes, labels = _data()
    margins = MARGIN + np.where(_after_root_split() == 1, 0.25, -0.5)
    quantised = quantise_gradients(margins, labels)
    expected = histograms(
        codes, quantised.gradients, quantised.hessians, np.zeros(ROWS, np.int64), (0,), BINS
    )
    np.testing.assert_array_equal(second.histograms, expected)


def test_extreme_leaf_values_keep_every_row_within_the_gradient_bounds() -> None:
    """Huge leaves saturate the gradients (still bounded); leaves that would make the
    margins infinite (and the gradients undefined) are refused."""
    bank = _bank()
    bank.level(_orders())

    saturated = bank.level(_orders(tree=1, leaves={0: -1.7e308}))

    _, labels = _data()
    assert saturated.histograms[0, 0, :, 0].sum() == -labels.sum() * GRADIENT_SCALE  # p = 0
    assert saturated.histograms[..., 1].sum() == 0
    with pytest.raises(LevelRefused, match="past the finite range"):
        bank.level(_orders(tree=2, leaves={0: -1.7e308}))


def test_a_node_with_fewer_rows_than_the_policy_s_minimum_is_released_as_zeros() -> None:
    bank = _bank(GbdtPolicy(min_node_rows=ROWS))
    bank.level(_orders())
    tiny = SplitOrder(node=0, feature=0, split_bin=1, default_left=False)  # a few rows left

    release = bank.level(_orders(depth=1, splits=(tiny,)))
    bigger = _bank(GbdtPolicy(min_node_rows=ROWS // 2 + 1))
    bigger.level(_orders())
    only_the_larger_child = bigger.level(_orders(depth=1, splits=(tiny,), nodes=(2,)))

    assert not release.histograms.any()
    # the parent minus the larger child would be the small one: both are withheld
    assert not only_the_larger_child.histograms.any()


def test_a_small_node_is_not_handed_back_as_a_difference_one_level_down() -> None:
    """The attack: split off a small node, ask for it (zeros), then split its larger
    sibling so that every row goes left and ask for that left child. Derived as the
    root minus the zeroed node, the sibling still holds the small node's rows, and the
    root's histogram minus the left child's would be the small node's exact histogram.
    The bank releases everything below a small pair as zeros."""
    codes, _ = _data()
    tiny = SplitOrder(node=0, feature=0, split_bin=1, default_left=False)
    small_rows = int(np.count_nonzero(codes[:, 0] < 1))
    assert 0 < small_rows < ROWS // 4  # node 1 is small, node 2 holds the rest
    bank = _bank(GbdtPolicy(min_node_rows=ROWS // 4))
    root = bank.level(_orders(max_depth=3)).histograms[0]
    small = bank.level(_orders(depth=1, splits=(tiny,), nodes=(1,), max_depth=3))
    everything_left = SplitOrder(node=2, feature=1, split_bin=BINS - 1, default_left=True)

    left = bank.level(_orders(depth=2, splits=(everything_left,), nodes=(5,), max_depth=3))

    assert not small.histograms.any()
    assert not left.histograms.any()
    nodes = np.where(codes[:, 0] < 1, 1, 5).astype(np.int64)
    exact_small_node = _expected(nodes, (1,))[0]
    assert not np.array_equal(root - left.histograms[0], exact_small_node)


def test_nodes_away_from_a_small_pair_are_released_as_they_are() -> None:
    policy = GbdtPolicy(min_node_rows=5)
    bank = _bank(policy)
    bank.level(_orders())

    children = bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))

    counts = np.bincount(_after_root_split(), minlength=3)[1:]
    assert counts.min() >= policy.min_node_rows
    assert np.array_equal(children.histograms, _expected(_after_root_split(), (1, 2)))


def _ledger(tmp_path: Path, max_epsilon: float = 4.0) -> PrivacyLedger:
    budget = PrivacyBudget(max_epsilon=max_epsilon, delta=1e-4)
    return PrivacyLedger(tmp_path / "ledger.jsonl", bank="acme", budget=budget)


def test_under_a_budget_every_level_is_charged_before_it_is_noised_and_released(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path)
    bank = _bank(ledger=ledger)

    root = bank.level(_orders())
    children = bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))

    assert [event.round for event in ledger.events] == [1, 2]
    plan = ledger.plan_for("boost-1", "gbdt")
    assert plan is not None and plan.planned_rounds == 3 * 2
    assert root.event == ledger.events[0] and children.event == ledger.events[1]
    assert not np.array_equal(root.histograms, _expected(np.zeros(ROWS, np.int64), (0,)))
    check = verify_ledger(ledger.path)
    assert check.ok, check.problems
    assert check.reported <= 4.0


def test_a_restarted_bank_cannot_release_a_level_twice(tmp_path: Path) -> None:
    """The coordinator repeats a level to a restarted bank: the ledger refuses it."""
    _bank(ledger=_ledger(tmp_path)).level(_orders())
    ledger = _ledger(tmp_path)
    restarted = _bank(ledger=ledger)

    with pytest.raises(LedgerError, match="already released level 1's histograms"):
        restarted.level(_orders())

    assert len(ledger.events) == 1


def test_a_level_the_budget_cannot_cover_is_refused_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path, max_epsilon=0.001)
    bank = _bank(ledger=ledger)

    with pytest.raises(PrivacyBudgetExceeded, match="boosting levels"):
        bank.level(_orders())

    assert ledger.events == () and ledger.plans == ()
    with pytest.raises(LevelRefused, match=r"a run starts at \(tree 0, depth 0\)"):
        bank.level(_orders(depth=1, splits=(ROOT_SPLIT,)))  # still at the start


def test_with_subsampling_the_bank_histograms_only_the_rows_it_drew_for_the_tree() -> None:
    bank = _bank()

    root = bank.level(_orders(subsample=0.5))
    children = bank.level(_orders(depth=1, splits=(ROOT_SPLIT,), subsample=0.5))

    drawn = int(root.histograms[0, 0, :, 2].sum())
    assert 10 <= drawn <= 50  # Binomial(60, 1/2): outside with odds below 1e-7
    assert int(children.histograms[:, 0, :, 2].sum()) == drawn
    full = _expected(np.zeros(ROWS, np.int64), (0,))
    assert np.all(np.abs(root.histograms[..., 2]) <= full[..., 2])


@pytest.mark.parametrize("subsample", [1.0, 0.5])
def test_the_bank_s_state_survives_its_bytes_between_messages(subsample: float) -> None:
    bank = _bank()
    bank.level(_orders(subsample=subsample, max_depth=3))
    bank.level(_orders(depth=1, splits=(ROOT_SPLIT,), subsample=subsample, max_depth=3))
    data = bank.state_bytes()
    assert data is not None and _bank().state_bytes() is None

    restored = _bank()
    restored.restore(data)

    split = SplitOrder(node=1, feature=0, split_bin=2, default_left=False)
    deeper = _orders(depth=2, splits=(split,), nodes=(3, 4), max_depth=3, subsample=subsample)
    expected = bank.level(deeper).histograms  # the tree's sample and nodes, carried over
    np.testing.assert_array_equal(restored.level(deeper).histograms, expected)
    with pytest.raises(LevelRefused, match=r"got \(0, 2\)"):
        restored.level(deeper)  # the order came back with the state


def test_state_of_other_rows_or_other_bytes_is_refused() -> None:
    bank = _bank()
    bank.level(_orders())
    data = bank.state_bytes()
    assert data is not None
    codes, labels = _data()
    other = GbdtBank(codes=codes, labels=1 - labels, n_bins=BINS, run="boost-1")

    with pytest.raises(ValueError, match="of other rows than this bank's"):
        other.restore(data)
    with pytest.raises(ValueError, match="not a bank's boosting state"):
        _bank().restore(b"not an npz file")
