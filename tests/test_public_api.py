"""Each package's public door: ``__all__`` is explicit, sorted and importable."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "credit": {
        "BankData", "ConfigError", "CreditMetrics", "CreditModel", "DatasetSchema", "EncodingKind",
        "FeatureEncoder", "FeatureStats", "FedcreditError", "ModelKind", "ModelSpec",
        "RunConfig", "SchemaError", "ScoreSummary", "StatsSource",
        "build_model", "combine_feature_stats", "compute_feature_stats", "credit_metrics",
        "embedded_data_path", "fit_encoder", "load_bank_csv", "load_model", "load_schema",
        "save_model", "summarize_scores",
    },
    "credit.messages": {
        "AuditHead", "BankIntro", "Dropped", "EvaluateRequest", "EvaluationDeclined",
        "EvaluationRows", "EvaluationSums", "LedgerEvent", "LedgerSummary", "MessagePart",
        "ProtocolStage", "QueryInstructions", "Refusal", "RoundInstructions", "RunInstructions",
        "Task", "TrainMetrics", "feature_stats_from_record", "feature_stats_to_record",
        "content_of", "score_summary_from_content", "score_summary_to_content",
        "GovernanceRequest", "governance_sums_from_content", "governance_sums_to_record",
    },
    "credit.governance": {
        "MISSING_LABEL", "SCORECARD_COLUMNS", "BinCounts", "BinKind", "BinLayout",
        "Characteristic", "MergedBins", "MonotonicTrend", "ReasonCode", "ScoreScaling",
        "Scorecard", "WoeTable", "build_scorecard", "combine_counts", "count_bins",
        "counts_from_vector", "counts_to_vector", "interval_labels", "merge_bins",
        "reason_codes", "settle_counts", "woe_table", "write_scorecard_csv",
        "CalibrationReport", "CalibrationSums", "calibration_report", "calibration_sums",
        "ColumnFairness", "FairnessSums", "GroupFairness", "fairness_report", "fairness_sums",
        "Grouping", "protected_groupings", "Recalibration", "brier_change", "fit_isotonic",
        "fit_platt", "PopulationCounts", "StabilityLevel", "StabilityResult",
        "characteristic_stability", "population_counts", "population_stability_index",
        "stability_report", "GovernanceLayout", "GovernanceReport", "GovernanceSums",
        "governance_from_sum", "governance_report", "governance_sensitivity",
        "governance_sums", "governance_vector", "schema_groupings",
    },
    "credit.audit": {
        "CLOSING_EVENTS", "GENESIS", "LOG_OPEN", "AuditBroken", "AuditLog", "AuditReport",
        "KeyHistory", "LogHead", "history_path",
        "arrays_sha256", "canonical_json", "fingerprint", "load_or_create_signing_key",
        "load_public_key", "public_key_path", "public_key_pem", "verify_audit",
    },
    "credit.package": {
        "DEFAULT_TOP_K", "MANIFEST_FILE", "PACKAGE_FORMAT", "PRIVACY_FILE", "SCHEMA_FILE",
        "SCORING_FILE", "SIGNATURE_FILE", "DevelopmentBins", "FeatureBins", "FileDigest",
        "Manifest", "ModelPackage", "PackageRefused", "ScalingSettings", "ScorecardSettings",
        "ScoringSettings", "SignerKey", "development_bins", "load_package", "package_digest",
        "scoring_settings", "signer_fingerprint", "verify_package", "write_package",
        "VerifiedFolder", "verify_folder",
    },
    "credit.gbdt": {
        "GRADIENT_SCALE", "GRADIENT_SCALE_BITS", "HISTOGRAM_CHANNELS", "MAX_BINS", "MAX_DEPTH",
        "MAX_TREES", "BankBoosting", "BoostingParams", "Ensemble", "FeatureBins",
        "FeatureImportance", "LevelSplits", "NodeSplit", "NodeSums", "QuantisedGradients",
        "SplitCandidate", "Tree", "TreeGrower", "apply_splits", "base_margin",
        "base_score_from_counts", "best_split", "bins_from_encoder", "contributions",
        "feature_importance", "histograms", "leaf_weight", "matrix_card", "node_sums",
        "quantise_gradients", "raw_matrix", "reason_features", "sample_features", "sample_rows",
        "save_xgboost_json", "to_xgboost_json", "train_central",
        "BOOSTED_MODEL", "ENCODER_FILE", "XGBOOST_FILE", "BoostedModel",
        "boosted_model_from_files", "ensemble_from_xgboost_json", "ContributionTables",
        "contribution_tables",
    },
    "credit.scoring": {
        "ApplicantTally", "BatchOutcome", "Reason", "ReasonTable", "ScoredRows", "Scorer",
        "check_applicants", "score_csv", "score_quantiles",
    },
    "participant": {
        "BankSource", "PreparedBank", "TrainSettings", "predict_proba", "prepare_bank",
        "train_locally",
    },
    "coordinator": {
        "Aggregation", "BankInfo", "CoordinatorError", "PlainAggregation", "RoundAborted",
        "RoundFailed", "RoundResult", "RunDriver", "RunState", "RunStopped", "SecureAggregation",
    },
    "simulations": {
        "Partition", "PartitionPlan", "PartitionScheme", "PartitionSettings", "SimulationPlan",
        "partition_rows", "plan_simulation", "run_simulated_consortium", "simulation_client_app",
    },
    "simulations.experiments": {
        "Grid", "GridRun", "OptionSpace", "RunRecord", "RunTask", "default_jobs", "expand_grid",
        "load_grid", "option_space", "run_grid", "write_results",
    },
    "privacy": {
        "DpEvent", "DpSgdSettings", "LedgerError", "PrivacyBudget", "PrivacyBudgetExceeded",
        "PrivacyError", "PrivacyLedger", "RunPlan", "SecureGaussian",
        "calibrate_noise_multiplier", "epsilon_spent", "train_dp_sgd", "validate_for_dp",
    },
    "serving": {
        "ApplicantsRefused", "DriftBaseline", "DriftMonitor", "DriftStatus", "ServiceRefused",
        "ServiceSettings", "ServiceThread", "create_app", "drift_baseline", "file_comparison",
        "is_loopback", "read_token", "sample_counts", "serve", "uvicorn_config",
    },
    # Packages whose modules are imported one by one (their docstrings list them).
    "cli": {"app", "main"},
    "coordinator.app": set(),
    "coordinator.ops": set(),
    "deploy": set(),
    "deploy.web": {
        "AuditView", "DashboardPage", "DashboardServer", "StateSource", "allowed_hosts",
        "check_host", "dashboard_app", "dashboard_server", "file_signature", "loopback_host",
        "read_audit",
    },
    "coordinator.ops.dashboard": {"ConsortiumSource", "SimulationSource", "coordinator_page"},
    "participant.guard": set(),
    "participant.node": set(),
    "privacy.secagg": {
        "FixedPoint", "Share", "ShareRejected", "combine_shares", "derive_key", "expand_mask",
        "generate_private_key", "open_share", "public_bytes", "seal_share", "split_secret",
        "GraphChoice", "GraphPlan", "SecAggCost", "harary_parameters",
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name}"
