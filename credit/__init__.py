"""Code both sides of a fedcredit consortium share: schema, encoders, models, metrics.

The public door of the package; each name is documented in its module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

__version__ = "0.1.0"  # kept equal to pyproject.toml's version by a test

if TYPE_CHECKING:
    from credit.datasets import embedded_data_path
    from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
    from credit.errors import ConfigError, FedcreditError, SchemaError
    from credit.feature_stats import FeatureStats, combine_feature_stats, compute_feature_stats
    from credit.loading import BankData, load_bank_csv
    from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics, summarize_scores
    from credit.model_card import CreditModel, load_model, save_model
    from credit.model_spec import ModelKind, ModelSpec
    from credit.models import build_model
    from credit.run_config import RunConfig
    from credit.schema import DatasetSchema, load_schema

__all__ = [
    "BankData",
    "ConfigError",
    "CreditMetrics",
    "CreditModel",
    "DatasetSchema",
    "EncodingKind",
    "FeatureEncoder",
    "FeatureStats",
    "FedcreditError",
    "ModelKind",
    "ModelSpec",
    "RunConfig",
    "SchemaError",
    "ScoreSummary",
    "StatsSource",
    "build_model",
    "combine_feature_stats",
    "compute_feature_stats",
    "credit_metrics",
    "embedded_data_path",
    "fit_encoder",
    "load_bank_csv",
    "load_model",
    "load_schema",
    "save_model",
    "summarize_scores",
]

# Exports resolve on first use (see credit.lazy).
_EXPORTS = {
    "BankData": "credit.loading",
    "ConfigError": "credit.errors",
    "CreditMetrics": "credit.metrics",
    "CreditModel": "credit.model_card",
    "DatasetSchema": "credit.schema",
    "EncodingKind": "credit.encoding",
    "FeatureEncoder": "credit.encoding",
    "FeatureStats": "credit.feature_stats",
    "FedcreditError": "credit.errors",
    "ModelKind": "credit.model_spec",
    "ModelSpec": "credit.model_spec",
    "RunConfig": "credit.run_config",
    "SchemaError": "credit.errors",
    "ScoreSummary": "credit.metrics",
    "StatsSource": "credit.encoding",
    "build_model": "credit.models",
    "combine_feature_stats": "credit.feature_stats",
    "compute_feature_stats": "credit.feature_stats",
    "credit_metrics": "credit.metrics",
    "embedded_data_path": "credit.datasets",
    "fit_encoder": "credit.encoding",
    "load_bank_csv": "credit.loading",
    "load_model": "credit.model_card",
    "load_schema": "credit.schema",
    "save_model": "credit.model_card",
    "summarize_scores": "credit.metrics",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
