"""The `rules:` list of the collector's config file -> validated `Rule`s, or a ValueError naming the rule.

Everything is checked at start (unknown keys, types, ranges, metric names, template fields, webhook
URLs, steering commands), so a typo is one line when the collector starts, not a silent rule at 3 a.m.

    rules:
      - name: loss-high-late
        kind: threshold
        metric: loss
        op: ">"
        threshold: 1.0e-2
        after_epoch: 5000
        actions: [log, {type: webhook, url: "https://hooks.example/pinn", timeout_s: 5}]
      - name: data-loss-stalled
        kind: no_improvement
        metric: loss_data
        epochs: 2000
      - name: slow-epochs
        kind: relative_to_median
        metric: elapsed_s
        factor: 3
        for_epochs: 5
        actions: [{type: steer, command: scale_lr, value: 0.5}]
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pinnprov.collector.alerts.actions import TEMPLATE_FIELDS, ActionSpec, CommandSpec, LogSpec, SteerSpec, WebhookSpec
from pinnprov.collector.alerts.rules import ALIASES, COMPARISONS, KINDS, METRICS, SCOPES, Rule, Scope

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
COMMON_KEYS = {"name", "kind", "metric", "after_epoch", "before_epoch", "for_epochs", "scope", "actions", "message"}
KIND_KEYS = {
    "threshold": {"op", "threshold"},
    "no_improvement": {"epochs", "min_delta"},
    "relative_to_median": {"op", "factor", "window", "min_samples", "baseline"},
    "non_finite": set(),
}
STEER_COMMANDS = ("stop", "scale_lr", "set_lr")


class _Fields:
    """Typed reads from one mapping; every error names the rule and the key."""

    def __init__(self, where: str, data: Mapping[str, Any]) -> None:
        self.where, self.data = where, data

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def number(self, key: str, default: float | None = None, *, minimum: float | None = None,
               positive: bool = False) -> float:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(f"missing {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(f"{key!r} must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise self.fail(f"{key!r} must be a number, got {value!r}") from None
        if not math.isfinite(number) or (minimum is not None and number < minimum) or (positive and number <= 0):
            bound = "> 0" if positive else f">= {minimum:g}" if minimum is not None else "finite"
            raise self.fail(f"{key!r} must be {bound}, got {value!r}")
        return number

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        number = self.number(key, default, minimum=minimum)
        if not number.is_integer():
            raise self.fail(f"{key!r} must be a whole number, got {self.data.get(key)!r}")
        return int(number)

    def text(self, key: str, default: str | None = None, choices: Sequence[str] = ()) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(f"missing {key!r}")
        if not isinstance(value, str):
            raise self.fail(f"{key!r} must be a string, got {value!r}")
        if choices and value not in choices:
            raise self.fail(f"{key!r} must be one of {', '.join(choices)}, got {value!r}")
        return value


def _check_template(fields: _Fields, text: str, what: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise fields.fail(f"{what}: bad template {text!r} ({error})") from None
    unknown = sorted(name for name in names if name not in TEMPLATE_FIELDS)
    if unknown:
        raise fields.fail(f"{what}: unknown field {{{unknown[0]}}} (use {', '.join(TEMPLATE_FIELDS)})")
    return text


def _action(fields: _Fields, raw: object, position: int) -> ActionSpec:
    where = _Fields(f"{fields.where}: action {position + 1}", raw if isinstance(raw, Mapping) else {})
    if isinstance(raw, str):
        raw = {"type": raw}
        where.data = raw
    if not isinstance(raw, Mapping):
        raise where.fail(f"expected a type name or a mapping, got {raw!r}")
    kind = where.text("type", choices=("log", "webhook", "command", "steer"))
    allowed = {"log": {"level"}, "webhook": {"url", "timeout_s", "headers"}, "command": {"argv", "timeout_s"},
               "steer": {"command", "value"}}[kind] | {"type"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise where.fail(f"unknown key {unknown[0]!r} for a {kind} action (allowed: {', '.join(sorted(allowed))})")
    if kind == "log":
        return LogSpec(where.text("level", "warning", ("info", "warning", "error")))
    if kind == "webhook":
        url = where.text("url")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise where.fail(f"webhook url must be http(s)://host/..., got {url!r}")
        headers = raw.get("headers", {}) or {}
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise where.fail("webhook headers must map names to strings")
        return WebhookSpec(url, where.number("timeout_s", 5.0, positive=True),
                           tuple((str(k), v) for k, v in headers.items()))
    if kind == "command":
        argv = raw.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise where.fail("command argv must be a non-empty list of strings (it runs without a shell)")
        for part in argv:
            _check_template(where, part, "argv")
        return CommandSpec(tuple(argv), where.number("timeout_s", 30.0, positive=True))
    command = where.text("command", "stop", STEER_COMMANDS)
    if command == "stop":
        return SteerSpec("stop", 0.0)
    value = where.number("value", positive=True)
    from pinnprov.core.steering import validate

    try:
        kind = validate(command, value)
    except ValueError as error:
        raise where.fail(str(error)) from None
    return SteerSpec(kind, value)


def _scope(fields: _Fields) -> Scope:
    raw = fields.data.get("scope", "all")
    if raw == "all":
        return Scope()
    if isinstance(raw, Mapping) and len(raw) == 1:
        (level, name), = raw.items()
        if level in SCOPES[1:] and isinstance(name, str) and name:
            return Scope(str(level), name)
    raise fields.fail(f"scope must be 'all', {{experiment: NAME}} or {{run: NAME}}, got {raw!r}")


def _metric(fields: _Fields, kind: str) -> str:
    metric = fields.text("metric", "any" if kind == "non_finite" else None)
    metric = ALIASES.get(metric, metric)
    valid = metric in METRICS or (metric.startswith("extra.") and len(metric) > 6) or (
        metric == "any" and kind == "non_finite"
    )
    if not valid:
        choices = ", ".join([*METRICS, *ALIASES, "extra.<name>"])
        raise fields.fail(f"unknown metric {metric!r} (choose from: {choices})")
    return metric


def parse_rule(raw: object, position: int) -> Rule:
    if not isinstance(raw, Mapping):
        raise ValueError(f"rule #{position + 1}: expected a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"rule #{position + 1}: 'name' must be letters, digits, '.', '_' or '-', got {name!r}")
    fields = _Fields(f"rule {name!r}", raw)
    kind = fields.text("kind", choices=KINDS)
    unknown = sorted(set(raw) - COMMON_KEYS - KIND_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(COMMON_KEYS | KIND_KEYS[kind]))
        raise fields.fail(f"unknown key {unknown[0]!r} for a {kind} rule (allowed: {allowed})")
    before = raw.get("before_epoch")
    actions = raw.get("actions", ["log"])  # an explicit [] records the alert and does nothing else
    if not isinstance(actions, list):
        raise fields.fail(f"actions must be a list, got {actions!r}")
    rule = Rule(
        name=name,
        kind=kind,
        metric=_metric(fields, kind),
        op=fields.text("op", ">", tuple(COMPARISONS)),
        threshold=fields.number("threshold") if kind == "threshold" else 0.0,
        factor=fields.number("factor", positive=True) if kind == "relative_to_median" else 1.0,
        epochs=fields.integer("epochs", minimum=1) if kind == "no_improvement" else 0,
        min_delta=fields.number("min_delta", 0.0, minimum=0.0),
        window=fields.integer("window", 0),
        min_samples=fields.integer("min_samples", 10, minimum=1),
        baseline=fields.text("baseline", "run", ("run", "experiment")),
        after_epoch=fields.integer("after_epoch", 0),
        before_epoch=None if before is None else fields.integer("before_epoch", 0),
        for_epochs=fields.integer("for_epochs", 1, minimum=1),
        scope=_scope(fields),
        actions=tuple(_action(fields, a, i) for i, a in enumerate(actions)),
        message=_check_template(fields, fields.text("message", ""), "message"),
    )
    if rule.before_epoch is not None and rule.before_epoch < rule.after_epoch:
        raise fields.fail("before_epoch must not be smaller than after_epoch")
    return rule


def load_rules(config: Sequence[object] | None) -> list[Rule]:
    """Validate the `rules:` list of a config file; rule names must be unique."""
    if config is None:
        return []
    if isinstance(config, str | bytes) or not isinstance(config, Sequence):
        raise ValueError(f"rules: expected a list of rules, got {type(config).__name__}")
    rules = [parse_rule(raw, position) for position, raw in enumerate(config)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"rule {rule.name!r}: defined twice")
        seen.add(rule.name)
    return rules


def load_rules_file(path: str | Path) -> list[Rule]:
    """Rules from a YAML file holding either `rules: [...]` (a collector config) or a bare list."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{file}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{file}: invalid YAML ({str(error).splitlines()[0]})") from None
    if isinstance(data, Mapping):
        data = data.get("rules")
    try:
        return load_rules(data)
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None
