"""The telemetry vocabulary: every span name, attribute key and metric name pinnprov emits or reads.

One module, one prefix (`pinn.`), units in UCUM. Both ends use it: pinnprov.capture writes these names,
pinnprov.collector reads them; nothing else spells them out. The hyperparameter and epoch attribute keys are taken
from the one schema of fields (pinnprov/core/fields.py), which also lists every hyperparameter and epoch field;
the constants below are the ones code refers to by name. Nothing here needs TensorFlow or the OpenTelemetry SDK.

Trace model: one trace per run (trace id = run id). The root span `RUN_SPAN` lives for the whole run and
ends with its status. Because spans are exported only when they end, the hyperparameters also travel in
a short `RUN_START_SPAN` emitted at start, so the store knows the run before its first epoch. Every
captured epoch is one `EPOCH_SPAN`, every adaptation one `ADAPTATION_SPAN`, all children of the root.
"""

from pinnprov.core import fields as _fields

PREFIX = "pinn."
"""Every pinnprov attribute and metric starts with this."""

# --- span names -----------------------------------------------------------------------------------
RUN_SPAN = "pinn.run"
"""Root span of a run: from run start to run end, carries status and summary."""
RUN_START_SPAN = "pinn.run.start"
"""Zero-length span at run start that carries the run identity and every hyperparameter."""
EPOCH_SPAN = "pinn.epoch"
"""One captured epoch: start/end times are the epoch's; attributes are its metrics."""
ADAPTATION_SPAN = "pinn.adaptation"
"""One change to the running configuration (learning rate, loss weight, optimiser, stop)."""

# --- run identity -------------------------------------------------------------------------------
RUN_ID = "pinn.run.id"
"""Run id, 32 hex digits; equal to the trace id."""
RUN_NAME = "pinn.run.name"
"""Human-readable run name (unique per store; prefixes select runs in queries)."""
EXPERIMENT = "pinn.experiment.name"
"""Experiment (sweep) the run belongs to."""
RUN_STATUS = "pinn.run.status"
"""completed | stopped | failed."""
RUN_ERROR = "pinn.run.error"
"""Exception type and message of a failed run."""
RUN_EPOCHS = "pinn.run.epochs"
"""Number of epochs completed when the run ended."""
SUMMARY_PREFIX = _fields.SUMMARY_PREFIX
"""Final metrics of a run, e.g. pinn.summary.r2, pinn.summary.rmse_m_s."""

# --- hyperparameters: every key under this prefix is a hyperparameter of the run ------------------
HYPERPARAMETER_PREFIX = _fields.HYPERPARAMETER_PREFIX
"""Generic prefix: pinn.hp.<name> = value. The names below are the ones queries rely on."""
HP_OPTIMIZER = _fields.hyperparameter("optimizer").attribute
"""adam | rmsprop (| lbfgs for a second phase)."""
HP_ACTIVATION = _fields.hyperparameter("activation").attribute
"""Activation function name from the activation registry."""
HP_LR_SCHEDULE = _fields.hyperparameter("lr_schedule").attribute
"""Learning-rate schedule function, e.g. exponential_decay or constant."""
HP_LR_INITIAL = _fields.hyperparameter("lr_initial").attribute
"""Initial learning rate."""
HP_LR_DECAY_RATE = _fields.hyperparameter("lr_decay_rate").attribute
"""Decay rate of the exponential schedule."""
HP_LR_DECAY_STEPS = _fields.hyperparameter("lr_decay_steps").attribute
"""Steps per decay period of the exponential schedule."""
HP_EPOCHS = _fields.hyperparameter("epochs").attribute
"""Planned number of epochs."""
HP_SEED = _fields.hyperparameter("seed").attribute
"""Random seed."""
HP_WEIGHT_RESIDUAL = _fields.hyperparameter("weight_residual").attribute
"""w_R."""
HP_WEIGHT_BOUNDARY = _fields.hyperparameter("weight_boundary").attribute
"""w_BC."""
HP_WEIGHT_DATA = _fields.hyperparameter("weight_data").attribute
"""w_D."""
HP_TAU_LAYERS = _fields.hyperparameter("tau_layers").attribute
"""Hidden layers of the traveltime-factor network tau(xs, xr)."""
HP_TAU_UNITS = _fields.hyperparameter("tau_units").attribute
"""Units per hidden layer of tau."""
HP_VELOCITY_LAYERS = _fields.hyperparameter("velocity_layers").attribute
"""Hidden layers of the velocity network v(xr)."""
HP_VELOCITY_UNITS = _fields.hyperparameter("velocity_units").attribute
"""Units per hidden layer of v."""
HP_COLLOCATION = _fields.hyperparameter("collocation_count").attribute
"""Number of collocation points for the residual."""

DATASET_NAME = "pinn.dataset.name"
"""Data set name (benchmark or the CSV file's stem)."""
DATASET_SHA256 = "pinn.dataset.sha256"
"""SHA-256 of the picks, identifying the data set."""
DATASET_PICKS = "pinn.dataset.picks"
"""Number of traveltime picks."""
DATASET_SOURCE = "pinn.dataset.source"
"""Where the data came from: a path or 'benchmark'."""

# --- per epoch ---------------------------------------------------------------------------------
EPOCH = _fields.epoch_field("epoch").attribute
"""Epoch number, 0-based."""
EPOCH_ELAPSED = _fields.epoch_field("elapsed_s").attribute
"""Wall seconds the epoch took (s)."""
LOSS_TOTAL = _fields.epoch_field("loss").attribute
"""L = w_R L_R + w_BC L_BC + w_D L_D."""
LOSS_BOUNDARY = _fields.epoch_field("loss_bc").attribute
"""L_BC: tau(xs, xs) = 1 / v(xs)."""
LOSS_RESIDUAL = _fields.epoch_field("loss_residual").attribute
"""L_R: residual of the factored eikonal equation at the collocation points."""
LOSS_DATA = _fields.epoch_field("loss_data").attribute
"""L_D: misfit at the measured source-receiver pairs."""
LEARNING_RATE = _fields.epoch_field("learning_rate").attribute
"""Learning rate in effect for the epoch."""
EPOCH_EXTRA_PREFIX = "pinn.epoch.extra."
"""Further per-epoch scalars, e.g. pinn.epoch.extra.data_rms_s."""

# --- adaptation ----------------------------------------------------------------------------------
ADAPTATION_PARAMETER = "pinn.adaptation.parameter"
"""What changed: learning_rate, loss_weight.residual, optimizer, stop, ..."""
ADAPTATION_OLD = "pinn.adaptation.old_value"
"""Value before the change."""
ADAPTATION_NEW = "pinn.adaptation.new_value"
"""Value after the change."""
ADAPTATION_AGENT = "pinn.adaptation.agent"
"""Who or what decided: user:<name>, schedule, rule:<name>, trainer."""
ADAPTATION_REASON = "pinn.adaptation.reason"
"""Why, in words."""
ADAPTATION_COMMAND_ID = "pinn.adaptation.command_id"
"""The steering command applied, if any."""

# --- resource (process-level) -------------------------------------------------------------------
RESOURCE_TENSORFLOW_VERSION = "pinn.tensorflow.version"
"""TensorFlow version of the training process."""
RESOURCE_DEVICES = "pinn.devices"
"""Devices TensorFlow sees, e.g. ["CPU:0", "GPU:0 NVIDIA A100"]."""

# --- metrics ---------------------------------------------------------------------------------------
# The per-epoch instruments are declared with their fields (pinnprov/core/fields.py, `EpochField.metric`).
METRIC_EPOCH_DURATION = _fields.epoch_field("elapsed_s").metric
"""Histogram of epoch wall time, unit s."""
METRIC_LOSS = _fields.epoch_field("loss").metric
"""Gauge of the latest loss, unit 1, one series per LOSS_COMPONENT."""
METRIC_LEARNING_RATE = _fields.epoch_field("learning_rate").metric
"""Gauge of the learning rate, unit 1."""
METRIC_EPOCHS = "pinn.epochs"
"""Counter of completed epochs, unit 1."""
LOSS_COMPONENT = "pinn.loss.component"
"""Metric attribute of the loss gauge: the loss field's `component` (fields.LOSS_COMPONENTS)."""

UNIT_SECONDS = "s"
UNIT_DIMENSIONLESS = "1"

INSTRUMENTATION_SCOPE = "pinnprov"
"""Name of the tracer and meter."""

# OpenTelemetry resource semantic conventions the store reads (spelled here so the store needs no OTel SDK).
PROCESS_PID = "process.pid"
"""Process id of the training process (OTel resource attribute)."""
PROCESS_OWNER = "process.owner"
"""User who owns the training process (OTel resource attribute)."""

# --- products of a run (issue 21): files and velocity-model snapshots ------------------------------------
ARTIFACT_SPAN = "pinn.artifact"
"""A file the run produced (zero-length span in the run's trace, possibly after the root span ended)."""
ARTIFACT_ROLE = "pinn.artifact.role"
"""network.tau | network.velocity | checkpoint | velocity_grid | figure | result | baseline.* | a user's role."""
ARTIFACT_URI = "pinn.artifact.uri"
"""file://<host>/<absolute path> where the file was written."""
ARTIFACT_SHA256 = "pinn.artifact.sha256"
"""SHA-256 of the file's bytes: the entity's identity (`pinnprov lineage FILE` hashes the file in hand)."""
ARTIFACT_SIZE = "pinn.artifact.size_bytes"
"""Size of the file in bytes (By)."""
ARTIFACT_MEDIA_TYPE = "pinn.artifact.media_type"
"""IANA media type, e.g. application/x-npy, image/png, application/x-keras."""

SNAPSHOT_SPAN = "pinn.model.snapshot"
"""The velocity model on its scoring grid at one epoch (zero-length span; values inline)."""
SNAPSHOT_KIND = "pinn.model.kind"
"""pinn (the run's model) | pygimli (the baseline's) | exact (a synthetic data set's true model)."""
SNAPSHOT_NX = "pinn.model.nx"
"""Grid cells along x."""
SNAPSHOT_NZ = "pinn.model.nz"
"""Grid cells along z (depth)."""
SNAPSHOT_X_MIN = "pinn.model.x_min"
"""x of the first cell centre (m)."""
SNAPSHOT_X_MAX = "pinn.model.x_max"
"""x of the last cell centre (m)."""
SNAPSHOT_Z_MIN = "pinn.model.z_min"
"""z of the first cell centre (m)."""
SNAPSHOT_Z_MAX = "pinn.model.z_max"
"""z of the last cell centre (m)."""
SNAPSHOT_VALUES = "pinn.model.values_f32"
"""The nz * nx velocities (m/s) as float32 little-endian, row-major (rows = depth), base64."""

RUN_RESUMED_FROM = "pinn.run.resumed_from"
"""On the run-start span: the run this one continues from its checkpoint (relation resumed_from)."""
RUN_RESUMED_EPOCH = "pinn.run.resumed_epoch"
"""Epochs the checkpoint held."""
RUN_RESUMED_CHECKPOINT = "pinn.run.resumed_checkpoint"
"""SHA-256 of the checkpoint file the run started from."""
RUN_RESUMED_AGENT = "pinn.run.resumed_agent"
"""Who decided to resume: user:<name>, sweep:retry."""
RUN_RESUMED_REASON = "pinn.run.resumed_reason"
"""Why, in words."""

RESOURCE_PINNPROV_VERSION = "pinn.pinnprov.version"
"""pinnprov version of the training process."""
RESOURCE_SOURCE_REVISION = "pinn.source.revision"
"""git revision of the checkout pinnprov ran from (with -dirty when it had changes), if it ran from one."""

# --- system metrics of a trainer (OpenTelemetry semantic conventions; pinnprov/capture/system_metrics.py) ------
SYSTEM_METRICS_SCOPE = "pinnprov.system"
"""Name of the meter of the system metrics (beside INSTRUMENTATION_SCOPE's training metrics)."""
METRIC_PROCESS_CPU = "process.cpu.utilization"
"""CPU time of the training process over wall time, divided by the CPUs (unit 1: 0..1)."""
METRIC_PROCESS_MEMORY = "process.memory.usage"
"""Resident set size of the training process (By)."""
METRIC_HOST_CPU = "system.cpu.utilization"
"""Busy fraction of the host's CPUs (unit 1: 0..1)."""
METRIC_HOST_MEMORY = "system.memory.usage"
"""Memory of the host in use (By), attribute system.memory.state = used."""
METRIC_HOST_MEMORY_UTILIZATION = "system.memory.utilization"
"""Fraction of the host's memory in use (unit 1)."""
METRIC_GPU_UTILIZATION = "hw.gpu.utilization"
"""Busy fraction of one GPU (unit 1), attributes hw.id (NVML index) and hw.name."""
METRIC_GPU_MEMORY = "hw.gpu.memory.usage"
"""Memory used on one GPU (By)."""
METRIC_GPU_POWER = "hw.power"
"""Power drawn by one GPU (W), attribute hw.type = gpu."""
SYSTEM_METRICS: tuple[str, ...] = (METRIC_PROCESS_CPU, METRIC_PROCESS_MEMORY, METRIC_HOST_CPU, METRIC_HOST_MEMORY,
                                   METRIC_HOST_MEMORY_UTILIZATION, METRIC_GPU_UTILIZATION, METRIC_GPU_MEMORY,
                                   METRIC_GPU_POWER)
"""Every system metric a trainer reports (the GPU ones only where NVML works)."""
HW_ID = "hw.id"
HW_NAME = "hw.name"
HW_TYPE = "hw.type"
MEMORY_STATE = "system.memory.state"
