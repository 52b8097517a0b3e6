"""Record and config keys carried in Flower messages: the wire contract of one round.

Both apps import these constants; no key is spelled out anywhere else.
"""

from __future__ import annotations

# Message contents (RecordDict keys).
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
BANK = "bank"
FEATURE_STATS = "feature-stats"
SCORES = "scores"

# Query tasks (ConfigRecord[TASK]).
TASK = "task"
TASK_FEATURE_STATS = "feature-stats"
TASK_ENROLL = "enroll"

# ConfigRecord entries sent by the coordinator.
SERVER_ROUND = "server-round"
SCHEMA_HASH = "schema-hash"
GRID_BINS = "grid-bins"
ENCODER = "encoder"
MODEL_SPEC = "model-spec"
LOCAL_EPOCHS = "local-epochs"
BATCH_SIZE = "batch-size"
LEARNING_RATE = "learning-rate"
SEED = "seed"
SCORE_BINS = "score-bins"
TEST_FRACTION = "test-fraction"

PLANNED_ROUNDS = "planned-rounds"
MAX_GRAD_NORM = "max-grad-norm"
RUN_NAME = "run-name"

# Entries sent back by banks.
BANK_NAME = "name"
NUM_EXAMPLES = "num-examples"
N_TRAIN = "n-train"
N_TEST = "n-test"
TRAIN_LOSS = "train-loss"
BRIER_SUM = "brier-sum"
LOG_LOSS_SUM = "log-loss-sum"
POSITIVES = "positives"
NEGATIVES = "negatives"
MOMENTS_SUFFIX = "/moments"
HISTOGRAM_SUFFIX = "/histogram"

# Differential privacy (replies of banks with a budget).
PRIVACY = "privacy"
LEDGER = "ledger"
EPSILON = "epsilon"
REFUSAL = "refusal"
REFUSAL_TYPE = "type"
REFUSAL_SPENT = "spent"
REFUSAL_REQUESTED = "requested"
REFUSAL_MAXIMUM = "maximum"

# Secure aggregation (see privacy.secagg.protocol for the message flow).
SECAGG = "secagg"
SECAGG_MASKED = "secagg-masked"
TASK_SECAGG_ADVERTISE = "secagg-advertise"
TASK_SECAGG_UNMASK = "secagg-unmask"
ENCRYPTION_KEY = "encryption-key"
ROSTER = "roster"
THRESHOLD = "threshold"
ADVERTISE_ROUND = "advertise-round"
ADVERTISEMENT = "advertisement"
FORWARD = "forward"
FIXED_POINT = "fixed-point"
UNMASK = "unmask"
REVEAL = "reveal"
PARTICIPANT_STATE = "participant-state"

# Simulated dropouts (research knob of ``fedcredit simulate``).
DROPOUT_RATE = "dropout-rate"
DROPPED = "dropped"
