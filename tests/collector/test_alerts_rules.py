"""The rule language: what is accepted, and that every bad rule is refused at start with the rule named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinnprov.collector.alerts import load_rules, load_rules_file
from pinnprov.collector.alerts.actions import CommandSpec, LogSpec, SteerSpec, WebhookSpec
from pinnprov.collector.alerts.rules import Samples, Scope

EXAMPLES = """
rules:
  - name: loss-high-late
    kind: threshold
    metric: loss
    op: ">"
    threshold: 1e-2     # PyYAML reads this as a string; numbers are accepted in either form
    after_epoch: 5000
    actions:
      - log
      - {type: webhook, url: "https://hooks.example/pinn", timeout_s: 5, headers: {X-Token: "${HOOK_TOKEN}"}}
  - name: data-loss-stalled
    kind: no_improvement
    metric: data
    epochs: 2000
    scope: {experiment: sweep-1}
  - name: slow-epochs
    kind: relative_to_median
    metric: epoch_time
    factor: 3
    for_epochs: 5
    window: 500
    actions: [{type: steer, command: scale_lr, value: 0.5}, {type: command, argv: [notify-send, "{rule} {run_name}"]}]
  - name: diverged
    kind: non_finite
    actions: []
"""


def test_the_documented_examples_load(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(EXAMPLES)
    high, stalled, slow, diverged = load_rules_file(path)
    assert (high.kind, high.metric, high.op, high.threshold, high.after_epoch) == ("threshold", "loss", ">", 0.01,
                                                                                  5000)
    assert high.actions == (LogSpec(), WebhookSpec("https://hooks.example/pinn", 5.0, (("X-Token", "${HOOK_TOKEN}"),)))
    assert (stalled.metric, stalled.epochs, stalled.scope) == ("loss_data", 2000, Scope("experiment", "sweep-1"))
    assert (slow.metric, slow.factor, slow.for_epochs, slow.window) == ("elapsed_s", 3.0, 5, 500)
    assert slow.actions == (SteerSpec("scale_lr", 0.5), CommandSpec(("notify-send", "{rule} {run_name}"), 30.0))
    assert (diverged.metric, diverged.actions) == ("any", ())


def test_no_rules_is_fine() -> None:
    assert load_rules(None) == [] and load_rules([]) == []


def base(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": "x", "kind": "threshold", "metric": "loss", "threshold": 1.0}
    rule.update(changes)
    return {key: value for key, value in rule.items() if value is not None}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (base(kind="sometimes"), "rule 'x': 'kind' must be one of threshold, no_improvement"),
        (base(thresold=1.0), "rule 'x': unknown key 'thresold' for a threshold rule"),
        (base(metric="lr"), "rule 'x': unknown metric 'lr'"),
        (base(threshold=None), "rule 'x': missing 'threshold'"),
        (base(threshold="high"), "rule 'x': 'threshold' must be a number"),
        (base(op="=="), "rule 'x': 'op' must be one of >, >=, <, <="),
        (base(for_epochs=0), "rule 'x': 'for_epochs' must be >= 1"),
        (base(after_epoch=1.5), "rule 'x': 'after_epoch' must be a whole number"),
        (base(after_epoch=10, before_epoch=5), "rule 'x': before_epoch must not be smaller than after_epoch"),
        (base(scope="experiment"), "rule 'x': scope must be 'all'"),
        (base(scope={"team": "a"}), "rule 'x': scope must be 'all'"),
        (base(message="{rule} at {step}"), "rule 'x': message: unknown field {step}"),
        (base(actions="log"), "rule 'x': actions must be a list"),
        (base(actions=["page"]), "rule 'x': action 1: 'type' must be one of log, webhook, command, steer"),
        (base(actions=[{"type": "webhook", "url": "file:///etc/passwd"}]), "rule 'x': action 1: webhook url must be"),
        (base(actions=[{"type": "webhook", "url": "http://h", "timeout_s": 0}]), "'timeout_s' must be > 0"),
        (base(actions=[{"type": "command", "argv": "rm -rf /"}]), "argv must be a non-empty list of strings"),
        (base(actions=[{"type": "command", "argv": ["x", "{secret}"]}]), "action 1: argv: unknown field {secret}"),
        (base(actions=[{"type": "steer", "command": "set_lr", "value": 100}]), "set_lr: learning rate must be in"),
        (base(actions=[{"type": "steer", "command": "reboot"}]), "'command' must be one of stop, scale_lr, set_lr"),
        (base(actions=[{"type": "steer", "command": "scale_lr"}]), "action 1: missing 'value'"),
        (base(actions=[{"type": "log", "url": "x"}]), "unknown key 'url' for a log action"),
        ({"name": "x", "kind": "no_improvement", "metric": "loss"}, "rule 'x': missing 'epochs'"),
        ({"name": "x", "kind": "relative_to_median", "metric": "loss", "factor": -1}, "'factor' must be > 0"),
        ({"name": "x", "kind": "relative_to_median", "metric": "loss", "factor": 2, "baseline": "fleet"},
         "'baseline' must be one of run, experiment"),
        ({"name": "x", "kind": "non_finite", "metric": "any", "threshold": 1}, "unknown key 'threshold'"),
        ({"kind": "threshold"}, "rule #1: 'name' must be"),
        ({"name": "has space", "kind": "threshold"}, "rule #1: 'name' must be"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        load_rules([rule])


def test_duplicate_names_and_non_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rule 'x': defined twice"):
        load_rules([base(), base()])
    with pytest.raises(ValueError, match="rules: expected a list"):
        load_rules({"name": "x"})  # type: ignore[arg-type]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    kind: threshold\n    metric: loss\n")
    with pytest.raises(ValueError, match=r"bad.yaml: rule 'x': missing 'threshold'"):
        load_rules_file(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(ValueError, match="broken.yaml: invalid YAML"):
        load_rules_file(broken)


def test_running_median_with_and_without_a_window() -> None:
    everything, recent = Samples(), Samples(window=3)
    for value in (5.0, 1.0, 3.0, 100.0, float("nan"), 2.0):
        everything.add(value)
        recent.add(value)
    assert len(everything) == 5 and everything.median() == 3.0  # NaN is not a sample
    assert recent.sorted == [2.0, 3.0, 100.0] and recent.median() == 3.0
