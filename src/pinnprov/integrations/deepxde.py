"""ProvenanceCallback for DeepXDE: a `Model.train` run recorded and steered through the run API.

    from pinnprov.integrations.deepxde import ProvenanceCallback

    model.compile("adam", lr=1e-3)
    model.train(iterations=5000, display_every=100, callbacks=[ProvenanceCallback(store="sqlite:///prov.db")])

Decisions:
- One run per `Model.train` call, opened with `pinnprov.start_run` when training begins (the capture settings are
  resolved when the callback is made, so a bad one fails before training) and ended when it ends. Pass `run=` to
  record into a run of your own instead (several `train` calls, Adam then L-BFGS, as one run; you end it).
- Epochs are DeepXDE's steps. DeepXDE evaluates its per-term training losses only every `display_every` steps, so
  an epoch is logged at each of those points (display_every=1 logs every step, at DeepXDE's cost of one extra
  loss evaluation per step); the epoch's time covers the steps since the previous one.
- Loss terms map to L_R / L_BC / L_D by their kinds: for `dde.data.PDE` / `TimePDE`, the first terms are the PDE
  residuals, then one per condition in `data.bcs`: `PointSetBC` (and `PointSetOperatorBC`) are data, every other
  condition (Dirichlet, Neumann, Robin, periodic, operator, initial) is boundary; a regularisation term and the
  terms of any other data class (`DataSet`, `Function`, ...) are data. `loss_terms=["residual", "boundary",
  "data", ...]` (one kind per term, or a mapping index -> kind; "ignore" leaves a term out of the components)
  overrides them. The values are DeepXDE's, i.e. already multiplied by `loss_weights`; L = their sum. Each term is
  also kept as an extra `loss_term_<i>`, and the test loss as `loss_test`.
- Hyperparameters: the optimizer and learning rate (or its decay schedule) of `Model.compile`, `loss_weights`, the
  network (layer sizes, activation, initializer, parameter count), DeepXDE's version and backend, the training
  point counts, then the user's `hyperparameters` (which win).
- Steering, applied between steps: `stop` sets `model.stop_training` (DeepXDE stops after the step); `set_lr` and
  `scale_lr` assign the optimizer's learning rate (TensorFlow, PyTorch, Paddle); each applied command is recorded as
  an adaptation with the command's agent and id. Refused with the reason: an LR change under a decay schedule or on
  the JAX backend (optax fixes the rate in its update), and `set_weight` (DeepXDE compiles its loss weights into
  the training step).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import deepxde as dde

from pinnprov.capture.capture_settings import CaptureOptions, CaptureSettings, settings_from
from pinnprov.capture.run_api import Run, RunCommand
from pinnprov.core.fields import hyperparameter
from pinnprov.wiring import start_run

log = logging.getLogger(__name__)

__all__ = ["KINDS", "ProvenanceCallback", "term_kinds"]

KINDS = ("residual", "boundary", "data", "ignore")
_DATA_CONDITIONS = frozenset({"PointSetBC", "PointSetOperatorBC"})
_MAX_TERM_EXTRAS = 16
_NAN = float("nan")
HP_OPTIMIZER, HP_LR_INITIAL = hyperparameter("optimizer").name, hyperparameter("lr_initial").name
HP_SCHEDULE = hyperparameter("lr_schedule").name


def term_kinds(model: Any, count: int) -> list[str]:
    """The kind of each of `count` loss terms of `model` (see the module docstring)."""
    data = getattr(model, "data", None)
    conditions = getattr(data, "bcs", None)
    if conditions is None or not hasattr(data, "pde"):
        return ["data"] * count
    conditions = list(conditions)
    net = getattr(model, "net", None)
    regularised = getattr(net, "regularizer", None) is not None
    residuals = max(0, count - len(conditions) - (1 if regularised else 0))
    kinds = ["residual"] * residuals
    kinds += ["data" if type(bc).__name__ in _DATA_CONDITIONS else "boundary" for bc in conditions]
    return (kinds + ["data"] * count)[:count]


def _user_kinds(loss_terms: Sequence[str] | Mapping[int, str] | None) -> dict[int, str] | None:
    if loss_terms is None:
        return None
    items = loss_terms.items() if isinstance(loss_terms, Mapping) else enumerate(loss_terms)
    kinds = {int(index): str(kind) for index, kind in items}
    for index, kind in kinds.items():
        if kind not in KINDS:
            raise ValueError(f"loss_terms[{index}]: {kind!r} is not one of {', '.join(KINDS)}")
    return kinds


def _optimizer(model: Any) -> Any:
    """The backend optimizer object: `model.opt` (PyTorch, Paddle, JAX) or the one the TensorFlow train step
    closes over (DeepXDE keeps it nowhere else); None if not found."""
    opt = getattr(model, "opt", None)
    if opt is not None:
        return opt
    step = getattr(model, "train_step", None)
    function = getattr(step, "python_function", step)
    try:
        return inspect.getclosurevars(function).nonlocals.get("opt") if function is not None else None
    except (TypeError, ValueError):
        return None


def _schedule_of(opt: Any) -> Any:
    """The learning-rate schedule object of a Keras optimizer, or None for a constant rate."""
    rate = getattr(opt, "_learning_rate", None)
    if rate is not None and callable(rate) and not hasattr(rate, "assign"):
        return rate
    return None


def _learning_rate(opt: Any) -> float:
    """The optimizer's current learning rate; NaN when it cannot be read (JAX/optax, L-BFGS)."""
    if opt is None:
        return _NAN
    try:
        groups = getattr(opt, "param_groups", None)  # PyTorch
        if groups:
            return float(groups[0]["lr"])
        schedule = _schedule_of(opt)
        if schedule is not None:
            return float(schedule(opt.iterations))
        getter = getattr(opt, "get_lr", None)  # Paddle
        if callable(getter):
            return float(getter())
        rate = getattr(opt, "learning_rate", None)
        return _NAN if rate is None or callable(rate) and not hasattr(rate, "numpy") else float(rate)
    except Exception:  # noqa: BLE001 - an exotic optimizer must not break training
        return _NAN


def _name(value: Any) -> str:
    name = getattr(value, "__name__", None) or type(value).__name__
    return str(name).lower()


def _network_hyperparameters(net: Any, inputs: int | None) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    sizes = getattr(net, "layer_sizes", None)  # JAX (flax) keeps its constructor arguments
    activation = getattr(net, "activation", None)
    initializer = getattr(net, "kernel_initializer", None)
    dense = [layer for layer in getattr(net, "denses", []) if hasattr(layer, "units")]  # TensorFlow
    linears = list(getattr(net, "linears", []) or [])  # PyTorch, Paddle
    if sizes is None and dense:
        sizes = ([inputs] if inputs else []) + [layer.units for layer in dense]
        activation = activation or getattr(dense[0], "activation", None)
        initializer = initializer or getattr(dense[0], "kernel_initializer", None)
    elif sizes is None and linears and hasattr(linears[0], "in_features"):
        sizes = [linears[0].in_features] + [layer.out_features for layer in linears]
    if sizes is not None:
        hp["network.layer_sizes"] = "-".join(str(int(size)) for size in sizes)
        hp["network.depth"] = max(0, len(sizes) - 2)
    if activation is not None:
        hp["network.activation"] = _name(activation)
    if initializer is not None and not isinstance(initializer, str):
        initializer = type(initializer).__name__ if not inspect.isfunction(initializer) else initializer.__name__
    if initializer is not None:
        hp["network.initializer"] = str(initializer)
    try:
        count = net.count_params() if hasattr(net, "count_params") else sum(p.numel() for p in net.parameters())
        hp["network.parameters"] = int(count)
    except Exception:  # noqa: BLE001 - an unbuilt network, a framework without a count
        pass
    return hp


class ProvenanceCallback(dde.callbacks.Callback):  # type: ignore[misc]
    """Records a DeepXDE `Model.train` run through the run API and applies steering between steps (see the module
    docstring). Capture settings are `pinnprov.start_run`'s keywords (`store=`, `otlp_endpoint=`, ...)."""

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        experiment: str = "deepxde",
        hyperparameters: Mapping[str, Any] | None = None,
        dataset: str | Mapping[str, Any] | None = None,
        loss_terms: Sequence[str] | Mapping[int, str] | None = None,
        steering: bool = True,
        settings: CaptureSettings | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        super().__init__()
        self._user_kinds = _user_kinds(loss_terms)
        self._settings = None if run is not None else settings_from(settings, options)  # bad settings fail here
        self._own_run = run is None
        self.run: Run | None = run
        self._name, self._experiment = name, experiment
        self._user_hp = dict(hyperparameters or {})
        self._dataset = dataset
        self._steering = steering
        self._seen = 0  # loss history entries already logged
        self._kinds: list[str] = []
        self._opt: Any = None

    # --- context manager: DeepXDE does not tell callbacks that train() raised ------------------------------

    def __enter__(self) -> ProvenanceCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and self._own_run and self.run is not None:
            self.run.end("failed", f"{kind.__name__}: {error}")
            self.run = None

    # --- DeepXDE events ----------------------------------------------------------------------------------------

    def on_train_begin(self) -> None:
        model = self.model
        self._opt = _optimizer(model)
        history = getattr(model, "losshistory", None)
        steps = list(getattr(history, "steps", []) or [])
        self._seen = len(steps)  # the evaluation before the first step is the initial state, not an epoch
        loss = getattr(model.train_state, "loss_train", None)
        count = len(loss) if loss is not None else 0
        kinds = term_kinds(model, count)
        if self._user_kinds is not None:
            kinds = [self._user_kinds.get(index, kind) for index, kind in enumerate(kinds)]
        self._kinds = kinds
        if self._own_run:
            if self.run is not None:  # a previous train() that raised without the context manager
                self.run.end("failed", "Model.train raised before on_train_end (recorded when the next began)")
            self.run = start_run(
                self._name, experiment=self._experiment, hyperparameters=self._hyperparameters(),
                dataset=self._dataset or {"name": type(getattr(model, "data", None)).__name__, "source": "deepxde"},
                steering=self._steering, settings=self._settings,
            )

    def on_epoch_end(self) -> None:
        run = self.run
        if run is None:
            return
        history = self.model.losshistory
        if len(history.steps) > self._seen:
            self._seen = len(history.steps)
            self._log(run, int(history.steps[-1]))
        if self._steering:
            for command in run.commands():
                self._apply(command)

    def on_train_end(self) -> None:
        run = self.run
        if run is None:
            return
        history = self.model.losshistory
        if len(history.steps) > self._seen:  # DeepXDE evaluates once more after the last step
            self._seen = len(history.steps)
            self._log(run, int(history.steps[-1]))
        if self._own_run:
            state = self.model.train_state
            best = getattr(state, "best_loss_train", None)
            if best is not None and math.isfinite(float(best)):
                run.log_summary(best_loss_train=float(best), best_step=int(getattr(state, "best_step", 0)))
            run.end()
            self.run = None

    # --- internals ------------------------------------------------------------------------------------------------

    def _log(self, run: Run, step: int) -> None:
        state = self.model.train_state
        terms = [float(value) for value in list(state.loss_train)]
        sums = {"residual": 0.0, "boundary": 0.0, "data": 0.0}
        present: set[str] = set()
        kinds = self._kinds if len(self._kinds) == len(terms) else term_kinds(self.model, len(terms))
        for kind, value in zip(kinds, terms, strict=False):
            if kind in sums:
                sums[kind] += value
                present.add(kind)
        extras: dict[str, float] = {}
        if len(terms) <= _MAX_TERM_EXTRAS:
            extras.update({f"loss_term_{index}": value for index, value in enumerate(terms)})
        test = getattr(state, "loss_test", None)
        if test is not None:
            extras["loss_test"] = float(sum(float(value) for value in list(test)))
        for index, metric in enumerate(list(getattr(state, "metrics_test", None) or [])):
            try:
                extras[f"metric_{index}"] = float(metric)
            except (TypeError, ValueError):
                continue
        run.log_epoch(
            step, loss=sum(terms), loss_residual=sums["residual"] if "residual" in present else None,
            loss_bc=sums["boundary"] if "boundary" in present else None,
            loss_data=sums["data"] if "data" in present else None, learning_rate=_learning_rate(self._opt),
            **extras,
        )

    def _apply(self, command: RunCommand) -> None:
        """Apply one steering command between steps; answer it either way (never raises into training)."""
        try:
            if command.kind == "stop":
                self.model.stop_training = True
                command.applied()
            elif command.kind in ("set_lr", "scale_lr"):
                self._set_lr(command)
            elif command.kind == "set_weight":
                command.refused("set_weight: DeepXDE compiles its loss weights into the training step")
            else:
                command.refused(f"unknown command kind {command.kind!r}")
        except Exception as error:  # noqa: BLE001 - steering never breaks training
            command.refused(f"{type(error).__name__}: {error}")

    def _set_lr(self, command: RunCommand) -> None:
        opt = self._opt
        if opt is None or dde.backend.backend_name == "jax":
            command.refused("the learning rate cannot be set on this backend (optax fixes it in its update)"
                            if opt is not None else "no optimizer to set the learning rate of")
            return
        if _schedule_of(opt) is not None:
            command.refused("the learning rate follows a decay schedule (Model.compile decay=) and cannot be set")
            return
        old = _learning_rate(opt)
        target = float(command.value) if command.kind == "set_lr" else old * float(command.value)
        if not (math.isfinite(target) and target > 0):
            command.refused(f"learning rate must be finite and > 0, got {target!r}")
            return
        groups = getattr(opt, "param_groups", None)
        if groups:
            for group in groups:
                group["lr"] = target
        elif callable(getattr(opt, "set_lr", None)):  # Paddle
            opt.set_lr(target)
        elif hasattr(getattr(opt, "learning_rate", None), "assign"):
            opt.learning_rate.assign(target)
        else:
            opt.learning_rate = target
        command.applied(old_value=old, new_value=_learning_rate(opt))

    def _hyperparameters(self) -> dict[str, Any]:
        model = self.model
        hp: dict[str, Any] = {}
        opt_name = getattr(model, "opt_name", None)
        if opt_name is not None:
            hp[HP_OPTIMIZER] = opt_name.lower() if isinstance(opt_name, str) else _name(opt_name)
        schedule = _schedule_of(self._opt) if self._opt is not None else None
        if schedule is not None:
            hp[HP_SCHEDULE] = type(schedule).__name__
            config = schedule.get_config() if hasattr(schedule, "get_config") else {}
            for key, value in config.items():
                if isinstance(value, bool | int | float | str) and key != "name":
                    hp[f"lr_schedule.{key}"] = value
        else:
            hp[HP_SCHEDULE] = "constant"
        lr = _learning_rate(self._opt)
        if math.isfinite(lr):
            hp[HP_LR_INITIAL] = lr
        weights = getattr(model, "loss_weights", None)
        if weights is not None:
            hp["loss_weights"] = ",".join(f"{float(w):g}" for w in list(weights))
        hp["loss_terms"] = ",".join(self._kinds)
        x_train: Any = getattr(model.train_state, "X_train", None)
        inputs = int(x_train.shape[1]) if getattr(x_train, "ndim", 0) == 2 else None
        hp.update(_network_hyperparameters(getattr(model, "net", None), inputs))
        data = getattr(model, "data", None)
        for attribute in ("num_domain", "num_boundary", "num_initial", "num_test"):
            value = getattr(data, attribute, None)
            if isinstance(value, int):
                hp[f"data.{attribute}"] = value
        if x_train is not None and hasattr(x_train, "shape"):
            hp["data.train_points"] = int(x_train.shape[0])
        hp["deepxde.version"] = str(getattr(dde, "__version__", ""))
        hp["deepxde.backend"] = str(dde.backend.backend_name)
        hp.update(self._user_hp)
        return hp

