"""Code both sides of a fedcredit consortium share: schema, encoders, models, metrics.

The public door of the package; each name is documented in its module.
"""

from __future__ import annotations

__version__ = "0.1.0"  # kept equal to pyproject.toml's version by a test

from credit.datasets import embedded_data_path
from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.errors import ConfigError, FedcreditError, SchemaError
from credit.feature_stats import FeatureStats, combine_feature_stats, compute_feature_stats
from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics, summarize_scores
from credit.model_card import CreditModel, load_model, save_model
from credit.models import ModelKind, ModelSpec, build_model
from credit.run_config import PartitionScheme, RunConfig
from credit.schema import DatasetSchema, load_schema

__all__ = [
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
    "PartitionScheme",
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
    "load_model",
    "load_schema",
    "save_model",
    "summarize_scores",
]
