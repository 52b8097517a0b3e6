"""The boosting level exchange's records: round trip, and malformed input refused."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict

from credit import message_keys
from credit.errors import MalformedMessage
from credit.messages.gbdt import (
    GbdtLevelRequest,
    LevelOrders,
    SplitOrder,
    histograms_from_content,
    histograms_to_record,
)

ORDERS = LevelOrders(
    tree=1,
    depth=0,
    n_trees=4,
    max_depth=3,
    base_margin=-0.8472978603872037,
    splits=(SplitOrder(node=2, feature=1, split_bin=3, default_left=True),),
    leaves={1: 0.25, 5: -0.125, 6: 0.0625},
)


def test_level_orders_travel_exactly() -> None:
    content = RecordDict()
    GbdtLevelRequest(orders=ORDERS).put(content)

    assert GbdtLevelRequest.take(content).orders == ORDERS


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('"leaves": {"1": NaN}', "leaf values must be finite"),
        ('"depth": -1', "depth"),
        (
            '"splits": [{"node": 0, "feature": 0, "split_bin": 0, "default_left": true}]',
            "split_bin",
        ),
    ],
)
def test_malformed_orders_are_refused_naming_the_entry(text: str, problem: str) -> None:
    fields = '{"tree": 0, "depth": 0, "n_trees": 1, "max_depth": 1, "base_margin": 0.0, '
    key, value = text.split(": ", 1)
    document = fields.replace(f"{key}: 0, ", "") + f"{key}: {value}}}"
    content = RecordDict({message_keys.GBDT_LEVEL: ConfigRecord({"orders": document})})

    with pytest.raises(MalformedMessage, match=problem):
        GbdtLevelRequest.take(content)


def test_histograms_travel_as_int64_and_anything_else_is_refused() -> None:
    histograms = np.arange(2 * 3 * 4 * 3, dtype=np.int64).reshape(2, 3, 4, 3) - 30
    content = RecordDict({message_keys.GBDT_HISTOGRAMS: histograms_to_record(histograms)})

    np.testing.assert_array_equal(histograms_from_content(content, shape=(2, 3, 4, 3)), histograms)
    with pytest.raises(MalformedMessage, match=r"must be int64\(1, 3, 4, 3\)"):
        histograms_from_content(content, shape=(1, 3, 4, 3))
