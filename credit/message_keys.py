"""Record keys of fedcredit's Flower messages, and the names of arrays inside them.

A message is a ``RecordDict``; these are its record names. The entries of config
and metric records are the typed fields of :mod:`credit.messages` (hyphenated), so
no entry key is spelled out anywhere.
"""

from __future__ import annotations

# Records of a message (RecordDict keys).
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
BANK = "bank"
FEATURE_STATS = "feature-stats"
SCORES = "scores"
PRIVACY = "privacy"
REFUSAL = "refusal"
SECAGG = "secagg"
# Secure aggregation's advertise request and advertisement: a record of their own, as
# they travel beside an unmask request or reveal in an unmask query and its reply.
SECAGG_ADVERTISE = "secagg-advertise"
DROPPED = "dropped"
# A train message's request to score the model it carries, and the bank's answer in
# its train reply (beside the reply's own ``metrics``).
EVALUATE = "evaluate"
EVALUATION = "evaluation"
EVALUATION_SCORES = "evaluation-scores"
EVALUATION_DECLINED = "evaluation-declined"
# An evaluate message's request for the governance release (calibration and fairness
# sums of the held-out rows), and the bank's sums in the clear in its evaluate reply.
GOVERNANCE = "governance"
GOVERNANCE_SUMS = "governance-sums"
# A stability query's request (the development model and layout it counts on), and the
# bank's counts of its later file in the clear in its reply.
STABILITY = "stability"
STABILITY_COUNTS = "stability-counts"
# A boosting level's request (the tree, depth and the previous level's splits), and the
# bank's histograms of the level's open nodes in the clear in its reply.
GBDT_LEVEL = "gbdt-level"
GBDT_HISTOGRAMS = "gbdt-histograms"
# The shared bin edges a boosting level is computed on (the run's binned encoder).
GBDT_ENCODER = "gbdt-encoder"
# The finished ensemble a boosting run's held-out evaluation scores.
GBDT_ENSEMBLE = "gbdt-ensemble"
# The head of the sender's audit log: in every request of a coordinator that keeps
# one, and every answered reply of a bank that keeps one (each side records the other's).
AUDIT_HEAD = "audit-head"

# Arrays inside records.
POSITIVES = "positives"
NEGATIVES = "negatives"
MOMENTS_SUFFIX = "/moments"
EVENTS_SUFFIX = "/events"
NON_EVENTS_SUFFIX = "/non-events"
SECAGG_MASKED = "secagg-masked"
SUMS = "sums"

# The weight of a bank's update in plain FedAvg (an entry of its train metrics).
NUM_EXAMPLES = "num-examples"
