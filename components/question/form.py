"""The pipeline's form: the question a person asks, as KFP parameters a person can fill in.

Each suite option of RunConfig is one parameter,
named after its flag (`--batch-size` -> `batch_size`) and described by its
help. An override a suite already answers is optional: 0 or an empty text
means "the suite's". Two parameters carry content a task cannot read from the
caller's disk: `suite_yaml` (a suite pasted in, or the CLI's suite file) and
`model_config` (the user's own network as its Keras config). The CLI turns a
RunConfig into these values (`to_form`) and the plan step turns them back
(`from_form`) and validates them with RunConfig.resolve, so a run started in
the KFP UI and one started from the CLI are the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import yaml

from optbench.components.question import suites
from optbench.components.question.options import RunConfig
from optbench.components.shared import models
from optbench.components.shared.untrusted import read_small_text

# The parameters that are not a RunConfig option, with their descriptions; and the form's own words for an
# option whose command-line help would mislead there.
CONTENT = {
    "suite_yaml": "A whole suite as YAML text (see `optbench suites --show seed-004`); when given, it is the "
    "suite and `suite` only names it.",
    "model_config": "Your own network as its Keras config JSON (model.to_json()); `optbench run/submit --model` "
    "fill it in from module:function or a .keras file. Empty: the built-in network `model` names.",
}


def _suite_help() -> str:
    return (
        f"A shipped suite ({', '.join(suites.available())}: `optbench suites` describes them), or the name of the "
        "suite given in suite_yaml. The parameters below override it."
    )


def _name(f: dataclasses.Field) -> str:
    return f.metadata["flag"].removeprefix("--").replace("-", "_")


def _optional(f: dataclasses.Field) -> bool:
    """An override whose absence means "the suite's": None in RunConfig, 0 or "" in the form."""
    return f.default is None


def _form_default(f: dataclasses.Field) -> Any:
    if _optional(f):
        return 0 if f.metadata["parse"] is int else ""
    return f.default


def parameters() -> dict[str, tuple[type, Any, str]]:
    """Every form parameter: name -> (type, default, description), in the order the form lists them."""
    out: dict[str, tuple[type, Any, str]] = {}
    for f in RunConfig.options():
        default = _form_default(f)
        help = _suite_help() if f.name == "suite" else f.metadata["help"]
        if _optional(f):  # the command line's "default: the suite's" is a 0 or an empty text in the form
            unset = "0" if default == 0 else "empty"
            help, said = re.subn(r"(?i)default: the suite's", f"{unset}: the suite's", help)
            help = help if said else f"{help} {unset.capitalize()}: the suite's."
        out[_name(f)] = (type(default), default, help)
        if f.name == "suite":
            out["suite_yaml"] = (str, "", CONTENT["suite_yaml"])
        if f.name == "model_name":
            out["model_config"] = (str, "", CONTENT["model_config"])
    return out


def to_form(config: RunConfig) -> dict[str, Any]:
    """The form's values for `config`: what `optbench run`, `submit` and `schedule` pass to the pipeline.

    A suite file is sent as its text and the user's own model as its Keras config (loaded and checked here,
    where the user's code is).
    """
    form: dict[str, Any] = {}
    for f in RunConfig.options():
        value = getattr(config, f.name)
        if value is None:
            value = _form_default(f)
        elif isinstance(value, list):
            value = ",".join(map(str, value))
        elif _optional(f) and f.metadata["parse"] is not int:
            value = str(value)
        form[_name(f)] = value
    form["suite_yaml"] = config.suite_yaml
    if not config.suite_yaml and config.suite not in suites.available():
        form["suite"], form["suite_yaml"] = Path(config.suite).stem, _suite_text(config.suite)
    form["model_config"] = ""
    if config.model_name and not models.is_builtin(config.model_name):
        form["model_config"] = models.custom(config.model_name)[1]
    return form


def _suite_text(path: str) -> str:
    """The suite file's content on one line (YAML's JSON form): KFP writes parameter defaults into the compiled
    file's header comment unescaped, and a line break there makes the whole file invalid YAML."""
    suites.load(path)  # valid, or the message that says what is wrong (and lists the shipped suites)
    try:
        return json.dumps(yaml.safe_load(read_small_text(path, "suite file")))
    except (OSError, ValueError) as e:
        raise suites.SuiteError(str(e)) from None


def from_form(form: dict[str, Any]) -> tuple[RunConfig, str]:
    """The RunConfig a form's values ask for, and the `model_config`; parsing raises ValueError naming the field.

    Validation is RunConfig.resolve's, as for the command line.
    """
    missing = sorted(set(parameters()) - set(form))
    if missing:
        raise ValueError(f"the form lacks {', '.join(missing)}")
    values: dict[str, Any] = {"suite_yaml": form["suite_yaml"]}
    for f in RunConfig.options():
        value = form[_name(f)]
        if _optional(f) and value in (0, ""):
            value = None
        elif _optional(f) and isinstance(value, str):
            try:
                value = f.metadata["parse"](value)
            except ValueError as e:
                raise ValueError(f"{_name(f)}: {e}") from None
        values[f.name] = value
    return RunConfig(**values), form["model_config"]
