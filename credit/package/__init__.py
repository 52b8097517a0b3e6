"""The signed model package: a run's ``model/`` folder, verified before anything reads it.

The package's door. :mod:`credit.package.package` writes, verifies and loads a
package, :mod:`credit.package.manifest` holds the signed manifest (file digests,
Ed25519 signature with the coordinator's audit key) and :mod:`credit.package.settings`
``scoring.json`` (score scaling, cut-off, reason texts, scorecard, development bins).
"""

from __future__ import annotations

from credit.errors import PackageRefused
from credit.package.manifest import (
    MANIFEST_FILE,
    PACKAGE_FORMAT,
    SIGNATURE_FILE,
    FileDigest,
    Manifest,
    SignerKey,
    VerifiedFolder,
    package_digest,
    signer_fingerprint,
    verify_folder,
)
from credit.package.package import (
    PRIVACY_FILE,
    SCHEMA_FILE,
    SCORING_FILE,
    ModelPackage,
    load_package,
    verify_package,
    write_package,
)
from credit.package.settings import (
    DEFAULT_TOP_K,
    DevelopmentBins,
    FeatureBins,
    ScalingSettings,
    ScorecardSettings,
    ScoringSettings,
    development_bins,
    scoring_settings,
)

__all__ = [  # noqa: RUF022 - plain sort, as every package door
    "DEFAULT_TOP_K",
    "DevelopmentBins",
    "FeatureBins",
    "FileDigest",
    "MANIFEST_FILE",
    "Manifest",
    "ModelPackage",
    "PACKAGE_FORMAT",
    "PRIVACY_FILE",
    "PackageRefused",
    "SCHEMA_FILE",
    "SCORING_FILE",
    "SIGNATURE_FILE",
    "ScalingSettings",
    "ScorecardSettings",
    "ScoringSettings",
    "SignerKey",
    "VerifiedFolder",
    "development_bins",
    "load_package",
    "package_digest",
    "scoring_settings",
    "signer_fingerprint",
    "verify_folder",
    "verify_package",
    "write_package",
]
