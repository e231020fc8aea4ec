"""The one declarative schema of what a run records: its hyperparameters, its summary and its epoch fields.

Every layer derives its part from these tables or is checked against them by tests/core/test_fields.py:
- pinn.config.TrainConfig.hyperparameters() reads `HYPERPARAMETERS` (config key -> recorded name);
- pinnprov.core.vocabulary takes the attribute keys from here (`pinn.hp.<name>`, the epoch attributes);
- pinnprov/store/schema.py builds the promoted `run` columns and the `epoch_metric` columns from here;
- pinnprov/store/rows.py, pinnprov/collector/translate.py and pinnprov/collector/translate_fast.py build rows and
  records field by field from `EPOCH_FIELDS`; pinnprov/collector/es_documents.py the Elasticsearch documents;
- the index templates (pinnprov/core/es_index_templates/*.json) and the typed records
  (pinnprov.store.records.EpochRecord, pinnprov.pinn.observer.EpochEnded) are checked against it;
- pinnprov/store/queries.py (Tables 1 and 2, the chart series), pinnprov/store/prov_export.py (the epoch entities'
  attributes), pinnprov/collector/alerts/rules.py (rule metrics and their aliases), pinnprov/capture/observer.py
  (the span attributes, the gauges) and pinnprov/integrations/keras.py (the loss component map) derive their lists
  from `EPOCH_FIELDS`; the UI's label maps and the other readers are checked against it.
Adding an epoch metric is one entry in `EPOCH_FIELDS` plus its producer (see CONTRIBUTING.md).

Units are UCUM (`s`, `1`, `m/s`); names and switches have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["str", "int", "float", "bool"]

HYPERPARAMETER_PREFIX = "pinn.hp."
"""Every attribute under this prefix is a hyperparameter of the run: pinn.hp.<name> = value."""
SUMMARY_PREFIX = "pinn.summary."
"""Final metrics of a run: pinn.summary.<name> = number."""

SQL_TYPES: dict[Kind, str] = {"str": "string", "int": "bigint", "float": "double", "bool": "string"}
"""Logical column type of a promoted field (pinnprov/store/schema.py maps logical types to each SQL dialect)."""
ES_TYPES: dict[Kind, str] = {"str": "keyword", "int": "long", "float": "double", "bool": "boolean"}
"""Elasticsearch mapping type of a field of that kind."""


@dataclass(frozen=True)
class Hyperparameter:
    """One knob of a run, recorded at run start (attribute `pinn.hp.<name>`, row of `run_hyperparameter`)."""

    key: str  # the TrainConfig attribute it is read from
    name: str  # the recorded name, dotted by topic
    kind: Kind
    unit: str
    doc: str
    column: str = ""  # also a typed column of `run` (the queries' Tables 2 and 3 use it); "" = key-value only
    es_field: str = ""  # also a typed field of the runs index; "" = only inside `hyperparameters`

    @property
    def attribute(self) -> str:
        return HYPERPARAMETER_PREFIX + self.name


@dataclass(frozen=True)
class EpochField:
    """One per-epoch value: an attribute of the epoch span, a column of `epoch_metric`, a field of the epochs index.

    `name` is the one name of the quantity in code: the producer's event attribute (pinn.observer.EpochEnded), the
    record attribute, the SQL column, the Elasticsearch field, the PROV export attribute, the query and chart-series
    column and the alert-rule metric. Everything else is declared here, not re-spelled where it is used:
    - `attribute`: the key of the epoch span attribute on the wire (OpenTelemetry);
    - `label`: how people see it (Table 1 headers, charts, the progress bar), e.g. L_BC; a label, never a key;
    - `component`: for a term of the loss, its name among the loss components (total | boundary | residual | data):
      the `pinn.loss.component` value of the loss gauge, the key of a framework's component map (the Keras
      callback's `loss_components`) and a name an alert rule's `metric:` accepts;
    - `metric`: the OpenTelemetry instrument the observer reports it to ("" = none; the epoch time is a histogram,
      every other one a gauge of the latest value, one series per component when there are components);
    - `aliases`: further names an alert rule's `metric:` accepts (kept for rule files that use them);
    - `latest`: also a column of Table 2 (the `latest` query: each run's last epoch) and of the UI's runs overview.
    Every measured field is a Table 1 (`epochs`) and chart-series column, a PROV export attribute and alertable.
    A missing optional value is recorded as NaN (unknown).
    """

    name: str
    kind: Kind
    unit: str
    attribute: str
    doc: str
    label: str = ""
    component: str = ""
    metric: str = ""
    aliases: tuple[str, ...] = ()
    latest: bool = True
    required: bool = False


@dataclass(frozen=True)
class SummaryField:
    """One final metric of a run (attribute `pinn.summary.<name>`, row of `run_summary`)."""

    name: str
    unit: str
    doc: str

    @property
    def attribute(self) -> str:
        return SUMMARY_PREFIX + self.name


def _hp(key: str, name: str, kind: Kind, unit: str, doc: str, column: str = "", es: bool = False) -> Hyperparameter:
    return Hyperparameter(key, name, kind, unit, doc, column, column if es else "")


# The promoted ones come first, in the order of their `run` columns.
HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    _hp("optimizer", "optimizer", "str", "", "first-phase optimiser: adam | rmsprop", "optimizer", es=True),
    _hp("activation", "activation", "str", "", "activation of the tau network (pinnprov/pinn/plugins.py)", "activation",
        es=True),
    _hp("lr_schedule", "lr.schedule", "str", "", "learning-rate schedule: exponential_decay | constant",
        "lr_schedule", es=True),
    _hp("lr_initial", "lr.initial", "float", "1", "initial learning rate", "lr_initial", es=True),
    _hp("lr_decay_rate", "lr.decay_rate", "float", "1", "decay factor per period of the exponential schedule",
        "lr_decay_rate", es=True),
    _hp("lr_decay_steps", "lr.decay_steps", "int", "1", "optimiser steps per decay period", "lr_decay_steps",
        es=True),
    _hp("seed", "seed", "int", "1", "random seed of networks and sampling", "seed"),
    _hp("epochs", "epochs", "int", "1", "planned epochs (an upper bound: stopping rules end runs earlier)",
        "planned_epochs"),
    _hp("velocity_activation_name", "activation.velocity", "str", "", "activation of the velocity network"),
    _hp("lr_staircase", "lr.staircase", "bool", "", "decay in whole periods instead of continuously"),
    _hp("lbfgs_steps", "lbfgs.steps", "int", "1", "L-BFGS iterations after the first phase"),
    _hp("lbfgs_memory", "lbfgs.memory", "int", "1", "L-BFGS history length"),
    _hp("weight_residual", "loss.weight.residual", "float", "1", "w_R, weight of the FEE residual loss L_R"),
    _hp("weight_boundary", "loss.weight.boundary", "float", "1", "w_BC, weight of the boundary loss L_BC"),
    _hp("weight_data", "loss.weight.data", "float", "1", "w_D, weight of the data loss L_D"),
    _hp("regularizer", "loss.regularizer", "str", "", "prior on v (pinnprov/pinn/plugins.py REGULARIZERS)"),
    _hp("weight_regularizer", "loss.weight.regularizer", "float", "1", "weight of the prior on v"),
    _hp("regularizer_beta", "loss.regularizer.beta", "float", "1", "scale of the support/tv priors (nondimensional)"),
    _hp("data_loss", "loss.data", "str", "", "data misfit: relative | absolute"),
    _hp("residual_form", "loss.residual_form", "str", "", "residual of |grad phi| = 1/v (pinnprov/pinn/plugins.py)"),
    _hp("tau_layers", "network.tau.layers", "int", "1", "hidden layers of tau(xs, xr)"),
    _hp("tau_units", "network.tau.units", "int", "1", "units per hidden layer of tau"),
    _hp("velocity_layers", "network.velocity.layers", "int", "1", "hidden layers of v(xr)"),
    _hp("velocity_units", "network.velocity.units", "int", "1", "units per hidden layer of v"),
    _hp("velocity_fourier_features", "network.velocity.fourier_features", "int", "1",
        "random Fourier features of xr for v (0 = raw coordinates)"),
    _hp("velocity_fourier_scale", "network.velocity.fourier_scale", "float", "1", "scale of those features"),
    _hp("velocity_min_m_s", "network.velocity.min_m_s", "float", "m/s", "lower bound of v (0 = from the data)"),
    _hp("velocity_max_m_s", "network.velocity.max_m_s", "float", "m/s", "upper bound of v (0 = from the data)"),
    _hp("collocation_count", "collocation.count", "int", "1", "collocation points per step"),
    _hp("collocation_redraw", "collocation.redraw", "str", "", "fresh collocation points every: step | chunk | never"),
    _hp("source_sampling", "collocation.source_sampling", "str", "", "collocation sources: sources | interpolated "
        "| domain"),
    _hp("reciprocity", "data.reciprocity", "bool", "", "also train on every pick with source and receiver swapped"),
    _hp("boundary_points", "collocation.boundary_points", "int", "1", "extra points where tau(x, x) = 1/v(x)"),
    _hp("ray_fraction", "collocation.ray_fraction", "float", "1", "share of collocation receivers near the rays"),
    _hp("ray_width", "collocation.ray_width", "float", "1", "their offset from the ray (nondimensional)"),
    _hp("stopping", "stopping.rule", "str", "", "data-only stopping rule: converged | discrepancy | holdout | none"),
    _hp("noise_level_s", "stopping.noise_level_s", "float", "s", "pick noise RMS for the discrepancy principle"),
    _hp("discrepancy_factor", "stopping.discrepancy_factor", "float", "1", "stop at data RMS <= factor x noise"),
    _hp("holdout_fraction", "stopping.holdout_fraction", "float", "1", "share of picks held out for stopping"),
    _hp("holdout_patience", "stopping.holdout_patience", "int", "1", "epochs without hold-out improvement"),
    _hp("convergence_window", "stopping.convergence_window", "int", "1", "epochs per window of the converged rule"),
    _hp("convergence_tolerance", "stopping.convergence_tolerance", "float", "1",
        "converged when the last window's median loss is less than this share below the window before's"),
    _hp("time_budget_s", "stopping.time_budget_s", "float", "s", "stop after this wall time (0 = no limit)"),
    _hp("perturb_seed", "rml.seed", "int", "1", "seed of this ensemble member's draws (0 = unperturbed run)"),
    _hp("perturb_picks_s", "rml.picks_s", "float", "s", "std of the noise added to every pick"),
    _hp("perturb_prior", "rml.prior", "float", "1", "std of the random field added to the prior's background (of v0)"),
    _hp("perturb_prior_length", "rml.prior_length", "float", "1", "its correlation length (share of L)"),
    _hp("perturb_prior_weight", "rml.prior_weight", "float", "1", "log-std of the factor on the prior's weight"),
    _hp("steps_per_call", "steps_per_call", "int", "1", "optimiser steps per compiled call"),
    _hp("jit_compile", "jit_compile", "bool", "", "XLA-compile the train step"),
    _hp("threads", "threads", "int", "1", "TensorFlow threads (0 = TensorFlow's default)"),
)

DERIVED_HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter("", "run.epochs_total", "int", "1", "planned steps of all phases (first optimiser + L-BFGS)"),
    Hyperparameter("", "scaling.length_m", "float", "m", "length scale of the nondimensionalisation"),
    Hyperparameter("", "scaling.velocity_m_s", "float", "m/s", "velocity scale of the nondimensionalisation"),
)
"""Facts the trainer adds at run start beside the config (besides resolving stopping and velocity bounds)."""

NOT_RECORDED: dict[str, str] = {
    "velocity_activation": "recorded resolved, as activation.velocity (\"\" means: same as activation)",
    "lr_report_every": "how often schedule steps are reported, not how the run trains",
    "experiment": "run identity (pinn.experiment.name), not a hyperparameter",
    "run_name": "run identity (pinn.run.name), not a hyperparameter",
}
"""TrainConfig attributes that are deliberately not hyperparameter rows, and why."""

_LOSS_METRIC = "pinn.loss"
"""The gauge of the loss terms, one series per component (attribute `pinn.loss.component`)."""

EPOCH_FIELDS: tuple[EpochField, ...] = (
    EpochField("epoch", "int", "1", "pinn.epoch", "epoch number, 0-based", label="epoch", required=True),
    EpochField("elapsed_s", "float", "s", "pinn.epoch.elapsed", "wall seconds the epoch took (default: the span's "
               "duration)", label="Time (s)", metric="pinn.epoch.duration", aliases=("epoch_time",)),
    EpochField("loss", "float", "1", "pinn.loss.total", "L = w_R L_R + w_BC L_BC + w_D L_D", label="L",
               component="total", metric=_LOSS_METRIC, required=True),
    EpochField("loss_bc", "float", "1", "pinn.loss.boundary", "L_BC: tau(xs, xs) = 1 / v(xs)", label="L_BC",
               component="boundary", metric=_LOSS_METRIC),
    EpochField("loss_residual", "float", "1", "pinn.loss.residual",
               "L_R: residual of the factored eikonal equation (the paper's Table 1 'LR', not a learning rate)",
               label="L_R", component="residual", metric=_LOSS_METRIC),
    EpochField("loss_data", "float", "1", "pinn.loss.data", "L_D: misfit at the picks", label="L_D",
               component="data", metric=_LOSS_METRIC),
    EpochField("learning_rate", "float", "1", "pinn.learning_rate", "learning rate of the epoch",
               label="learning rate", metric="pinn.learning_rate", latest=False),
)
"""The epoch span's fields, in the column order of `epoch_metric`. `epoch` is the key; the rest are measured."""

MEASURED_EPOCH_FIELDS: tuple[EpochField, ...] = EPOCH_FIELDS[1:]
"""The numeric measurements of an epoch (everything but its number): NaN/inf are stored NULL and named.

Each is a column of Table 1 (`epochs`) and of the chart series, a PROV export attribute and an alert-rule metric."""
LOSS_FIELDS: tuple[EpochField, ...] = tuple(field for field in EPOCH_FIELDS if field.component)
"""The loss and its terms, total first: the loss gauge's series and a framework's component map, by component."""
LATEST_EPOCH_FIELDS: tuple[EpochField, ...] = tuple(field for field in MEASURED_EPOCH_FIELDS if field.latest)
"""The columns of a run's last epoch in Table 2 (`latest`) and in the UI's runs overview."""
METRIC_EPOCH_FIELDS: tuple[EpochField, ...] = tuple(field for field in EPOCH_FIELDS if field.metric)
"""The fields the observer also reports as OpenTelemetry metrics (`EpochField.metric`)."""

SUMMARY_FIELDS: tuple[SummaryField, ...] = (
    SummaryField("r2", "1", "R^2 of the velocity on the scoring grid (benchmark and synthetic cases only)"),
    SummaryField("rmse_m_s", "m/s", "RMSE of the velocity on the scoring grid"),
    SummaryField("data_rms_s", "s", "RMS traveltime misfit at the picks"),
    SummaryField("holdout_rms_s", "s", "RMS misfit at the held-out picks (hold-out stopping)"),
    SummaryField("epochs", "1", "epochs completed"),
    SummaryField("seconds", "s", "wall seconds of the run"),
    SummaryField("loss", "1", "total loss of the last epoch"),
    SummaryField("learning_rate", "1", "learning rate of the last epoch"),
)

HYPERPARAMETERS_BY_KEY: dict[str, Hyperparameter] = {hp.key: hp for hp in HYPERPARAMETERS}
HYPERPARAMETERS_BY_NAME: dict[str, Hyperparameter] = {hp.name: hp for hp in HYPERPARAMETERS}
PROMOTED_HYPERPARAMETERS: tuple[Hyperparameter, ...] = tuple(hp for hp in HYPERPARAMETERS if hp.column)
"""Hyperparameters with their own typed `run` column, in column order."""
EPOCH_FIELDS_BY_NAME: dict[str, EpochField] = {field.name: field for field in EPOCH_FIELDS}
LOSS_COMPONENTS: tuple[str, ...] = tuple(field.component for field in LOSS_FIELDS)
"""total | boundary | residual | data: the loss gauge's `pinn.loss.component` values, a component map's keys."""


def hyperparameter(key: str) -> Hyperparameter:
    """The hyperparameter read from TrainConfig attribute `key` (KeyError names it)."""
    return HYPERPARAMETERS_BY_KEY[key]


def epoch_field(name: str) -> EpochField:
    """The epoch field called `name` (record attribute / column / ES field)."""
    return EPOCH_FIELDS_BY_NAME[name]
