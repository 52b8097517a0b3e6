"""Differential privacy (DP-SGD accounting and budgets) and secure aggregation.

Empty until those capabilities land; the package exists so the layout is stable.
"""

from __future__ import annotations

__all__: list[str] = []
