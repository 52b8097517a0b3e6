"""Reproducible DP noise for research: simulated banks keyed from the run's seed.

By default every simulated bank draws its DP noise as a deployed bank does, from
ChaCha20 keys fresh from ``os.urandom`` (:class:`~privacy.noise_keys.FreshNoiseKeys`),
so a private simulation's metrics change from one run to the next at the same seed.
``fedcredit simulate --reproducible-noise`` gives each simulated bank's guard keys
derived from the seed instead (:class:`~privacy.noise_keys.SeededNoiseKeys`, HKDF-SHA256
per bank, purpose and release), so every DP draw, and with it the whole run, repeats
exactly at the same seed. Research only: the noise is predictable from the seed, so
such a model is not private; the run's outputs say so (:data:`REPRODUCIBLE`, recorded
in ``simulation.json``, ``metrics.json`` and the report).

The choice is made here, where the simulated banks' guards are built, and nowhere
else: it is not a run-config key and no message carries it, so a coordinator cannot
switch a bank to predictable noise, and a deployed bank's guard
(:meth:`~participant.guard.bank_guard.BankGuard.open`) always keys from the OS.
"""

from __future__ import annotations

import json
from pathlib import Path

from privacy.noise_keys import NoiseKeys, SeededNoiseKeys

__all__ = ["REPRODUCIBLE", "UNPREDICTABLE", "noise_keys_for", "noise_text", "record_noise"]

REPRODUCIBLE = "reproducible from seed (research only)"
"""How a run with ``--reproducible-noise`` describes its DP noise (``noise`` key)."""
UNPREDICTABLE = "fresh keys from os.urandom"
"""How any other simulation describes its DP noise (``simulation.json`` only)."""
NOISE_KEY = "noise"


def noise_keys_for(bank: str, *, seed: int, reproducible: bool) -> NoiseKeys | None:
    """A simulated bank's noise keys: from ``seed`` when ``reproducible``, else None (the OS)."""
    return SeededNoiseKeys(seed=seed, bank=bank) if reproducible else None


def noise_text(reproducible: bool) -> str:
    """:data:`REPRODUCIBLE` or :data:`UNPREDICTABLE`."""
    return REPRODUCIBLE if reproducible else UNPREDICTABLE


def record_noise(metrics: Path, model: Path, report: Path) -> None:
    """Mark a reproducible-noise run's ``metrics.json`` and its report as research only.

    Adds ``"noise": REPRODUCIBLE`` to ``metrics.json`` and writes the report again
    from it (its privacy section then says the noise is reproducible). A run whose
    ``metrics.json`` is missing (it failed before writing one) is left as it is.
    """
    if not metrics.exists():
        return
    document = json.loads(metrics.read_text(encoding="utf-8"))
    document[NOISE_KEY] = REPRODUCIBLE
    metrics.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    from coordinator.app.report.writer import write_report

    write_report(metrics=metrics, model=model, report=report)
