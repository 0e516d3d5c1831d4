"""The learning-rate sweep's names and the tune step's result: what the tune, train and report steps share.

Under tune-confirm the confirming round loops over every variant on every
seed (the tune step's output list), and a trial the tune step did not choose
is skipped at once: its history says "skipped", it has no model, and the
steps after it leave it out (`artifacts.trained`).
"""

from __future__ import annotations

import json
from pathlib import Path

from optbench.components.shared.files import read_json, write_json_atomic


def family_of(history: dict) -> str:
    """The variant without its swept learning rate: what the lr sweep groups by ("adam lr=0.003" -> "adam")."""
    variant = history["variant"]
    return variant.rsplit(" lr=", 1)[0] if history.get("lr_sweep") else variant


TUNING_FILE = "tuning.json"


def write_tuning(folder: str, result: dict) -> str:
    """Write the tune step's result (what the confirming trials read); returns it as JSON for the report."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(folder) / TUNING_FILE, result)
    return json.dumps(result)


def read_tuning(folder: str) -> dict:
    return read_json(Path(folder) / TUNING_FILE)


def tuned(folder: str) -> dict | None:
    """The tune step's choice, or None when the protocol tuned nothing (what the report takes)."""
    result = read_tuning(folder)
    return result if "chosen" in result else None


def confirmed(trial: dict, result: dict) -> bool:
    """Whether `trial` (of the confirming pool: every variant on every seed) is one the confirming phase trains:
    every seed of each optimizer's default and chosen variant. The others are skipped where they would train."""
    if "chosen" not in result:  # a protocol with nothing to confirm
        return False
    return not trial["lr_sweep"] or trial["variant"] in result["chosen"].values()
