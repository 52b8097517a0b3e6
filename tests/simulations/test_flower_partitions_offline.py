"""The flwr-datasets schemes stay offline and out of the Hugging Face cache.

A fresh Python process with ``HOME`` in a temporary folder, no Hugging Face variables
set and every socket connection refused runs the three schemes; afterwards nothing
under ``HOME`` belongs to Hugging Face, and the working folder is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import os
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access while partitioning")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse

    import numpy as np
    import pandas as pd

    from simulations.partition import partition_rows
    from simulations.settings import PartitionScheme

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": rng.integers(0, 2, 900), "GROUP": rng.choice(list("abc"), 900)})
    for scheme in (PartitionScheme.NATURAL_ID, PartitionScheme.PATHOLOGICAL, PartitionScheme.SIZE):
        banks = partition_rows(
            frame, target="y", scheme=scheme, column="GROUP", n_banks=3, min_rows=10
        )
        assert sum(bank.rows.size for bank in banks) == 900, scheme
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    print("partitioned")
    """
)


def test_flwr_datasets_schemes_touch_no_network_and_no_hugging_face_cache(
    tmp_path: Path,
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE", "XDG_", "MPLCONFIGDIR", "TRANSFORMERS"))
    }
    environment |= {"HOME": str(home), "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "partitioned"
    written = sorted(str(path.relative_to(home)) for path in home.rglob("*") if path.is_file())
    assert not [path for path in written if "huggingface" in path.lower()], written
    # flwr-datasets imports matplotlib (its plots), which keeps a font cache under HOME.
    assert all(path.split("/")[1] == "matplotlib" for path in written), written
    assert not any(work.iterdir())
    assert "Generating partition_id_to_indices" not in result.stderr  # its progress bar
