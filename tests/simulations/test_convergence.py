"""A small consortium's default run converges: issue 14 item 9.

1,000 rows of the embedded data over 3 banks (333 rows each: 213 training rows after
the hold-out and the validation part). With the old defaults (one local epoch per round,
about 4 steps at such a bank, and the last round's model kept) this run ended at a
held-out AUC of 0.659 for seed 1, well below a centralised logistic regression (0.756).
With local work in steps (50 per round at every bank) and the best validated round
kept, it ends at 0.779 (measured; seed 0: 0.766 against 0.690).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from credit.model_card import load_model
from credit.run_config import RunConfig
from participant.guard.in_process import guard_for
from simulations.engine import plan_simulation
from simulations.settings import PartitionSettings
from tests.support.consortium import run_in_process

pytestmark = pytest.mark.slow

MARGIN = 0.01
"""How far below the centralised AUC the federated run may end (measured: 0.024 above)."""


def test_a_default_run_of_three_small_banks_ends_close_to_a_centralised_fit(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    """Default settings (secure aggregation off: it sums the same updates, and costs
    exchanges, not accuracy); the centralised logistic regression (scikit-learn's
    defaults) is fitted on the same encoding of the same training rows and scored on
    the same held-out rows."""
    data = tmp_path / "rows.csv"
    embedded_frame.sample(n=1_000, random_state=0).to_csv(data, index=False)
    config = RunConfig(out_dir=str(tmp_path / "run"), seed=1, secure_aggregation=False)
    plan = plan_simulation(config, n_banks=3, partition=PartitionSettings(data=str(data)))
    run_in_process(plan)

    model = load_model(tmp_path / "run" / "model")
    banks = [guard_for(settings).bank for settings in plan.banks]
    train, test = pd.concat(b.train for b in banks), pd.concat(b.test for b in banks)
    target = banks[0].schema.target
    central = LogisticRegression(max_iter=5_000).fit(model.encoder.transform(train), train[target])
    central_auc = roc_auc_score(
        test[target], central.predict_proba(model.encoder.transform(test))[:, 1]
    )
    federated_auc = roc_auc_score(test[target], model.predict_proba(test))
    document = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert document["final"]["auc"] == pytest.approx(federated_auc, abs=0.01)  # 100 bins
    assert federated_auc >= central_auc - MARGIN
