"""What changed since the suite's previous run, decided with the verdict's statistics; and the report's history.

This run's record is compared with the most recent earlier one:

- the winner: the verdict's answer (a significant winner, or none) is compared as it stands;
- each optimizer's test accuracy: on the same test set (the same fingerprint) its trials are paired with the
  previous run's by seed and by test example, and tested as the verdict tests two variants (significance.py:
  exact McNemar with one seed in common, the two-level paired bootstrap with several), Holm-adjusted over the
  optimizers at significance.ALPHA. On another test set no example pairs up: the 95% intervals over seeds are
  compared instead (a change when they do not overlap); with one seed there is no interval, and the accuracy
  is not judged (a note, not a flag);
- divergence: a seed that diverged now and not before, or the other way round;
- the cost of a step (the step-cost step's median): this run's against the
  earlier runs', flagged when it lies outside their 95% prediction interval (Student's t). The unit is the run,
  not the timing round: the rounds of one run share its machine's state that night, so a test on them would
  call every few per cent between two nights significant and alert on noise. With fewer than MIN_COST_RUNS
  earlier runs that measured it, the cost is not judged;
- the settings, the versions, the devices and each optimizer's hyperparameters (learning rate, ...): listed,
  since they are the likely cause of any other change.

No fixed delta decides anything. The result is a plain dict (changes.json, and the record's `changes`, which
`optbench runs` lists): its `flags` are {kind, optimizer (when it is about one), text, evidence}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from optbench.components.history import trends
from optbench.components.history.records import correct_by_seed, flat_settings
from optbench.components.results import charts
from optbench.components.results.render import figure
from optbench.components.results.row import NA, fmt, fmt_interval
from optbench.components.results.significance import ALPHA, TEST_WORDS, holm, paired_test
from optbench.components.results.tables import Table

HISTORY_PNG = "history.png"
MIN_COST_RUNS = 2  # a prediction interval needs a spread between runs: two runs at least
SHOWN_CHARS = 60  # of a setting's value in a flag: the settings table has it whole
Pairs = list[tuple[str, dict, dict]]  # (optimizer, its row in the earlier run, its row in this one)


def what_changed(current: dict, earlier: list[dict], root: str, notes: list[str]) -> dict:
    """What changed between the last of `earlier` (records, oldest first) and `current` (this run's record)."""
    out: dict[str, Any] = {
        "root": root,
        "earlier_runs": len(earlier),
        "since": None,
        "flags": [],
        "not_judged": [],
        "tests": [],
        "notes": list(notes),
        "changed": False,
    }
    if not earlier:
        return out
    before = earlier[-1]
    old = {r["optimizer"]: r for r in before["rows"]}
    common = [(r["optimizer"], old[r["optimizer"]], r) for r in current["rows"] if r["optimizer"] in old]
    accuracy, accuracy_notes, accuracy_tests = _accuracy(before, current, common)
    cost, cost_notes, cost_tests = _step_cost(earlier, current)
    flags = [
        *_winner(before, current),
        *accuracy,
        *_divergence(common),
        *cost,
        *_settings(before, current),
        *_hyperparameters(before, current, common),
    ]
    return {
        **out,
        "since": {"run_id": before["run_id"], "finished_at": before["finished_at"]},
        "flags": flags,
        "not_judged": accuracy_notes + cost_notes,
        "tests": [
            f"the winner: the verdict's answer (paired tests, Holm-adjusted, alpha {ALPHA:g})",
            *accuracy_tests,
            "divergence: per seed",
            *cost_tests,
            "settings, versions, devices and hyperparameters: compared value by value",
        ],
        "changed": bool(flags),
    }


def _flag(kind: str, text: str, evidence: dict, optimizer: str | None = None) -> dict:
    return {
        "kind": kind,
        **({"optimizer": optimizer} if optimizer is not None else {}),
        "text": text,
        "evidence": evidence,
    }


def _answer(record: dict) -> str | None:
    """The verdict's answer: the winner's name when its lead is significant, else None (no single winner)."""
    return record["winner"]["optimizer"] if record["winner"]["significant"] else None


def _winner(before: dict, current: dict) -> list[dict]:
    was, now = _answer(before), _answer(current)
    if was == now:
        return []

    def words(answer: str | None, record: dict) -> str:
        best = record["winner"]["optimizer"]
        return answer or "no significant winner" + (f" (best: {best})" if best else "")

    return [
        _flag(
            "winner",
            f"winner: {words(now, current)}, was {words(was, before)}",
            {"before": before["winner"], "after": current["winner"], "test": "the verdict's paired tests"},
        )
    ]


def _accuracy(before: dict, current: dict, common: Pairs) -> tuple[list[dict], list[str], list[str]]:
    """Test accuracy per optimizer in both runs: paired tests on the same test set, else the 95% intervals."""
    same_test_set = before["test_set"] is not None and before["test_set"] == current["test_set"]
    paired, flags, notes, by_interval = [], [], [], []
    for name, was, now in common:
        if was["test_accuracy"] is None or now["test_accuracy"] is None:
            continue  # nothing scored in one of them: divergence or stopping says why
        result = paired_test(correct_by_seed(current, now), correct_by_seed(before, was)) if same_test_set else None
        if result is not None:
            paired.append((name, was, now, result))
            continue
        intervals = tuple([r["test_accuracy_ci_low"], r["test_accuracy_ci_high"]] for r in (was, now))
        if None in intervals[0] + intervals[1]:
            why = "another test set" if not same_test_set else "no paired predictions"
            notes.append(f"{name}: test accuracy not judged (one seed, so no interval, and {why})")
            continue
        by_interval.append(name)
        if intervals[1][0] > intervals[0][1] or intervals[1][1] < intervals[0][0]:
            flags.append(
                _flag(
                    "accuracy",
                    f"{name}: test accuracy {fmt(now['test_accuracy'])} {fmt_interval(*intervals[1])}, was "
                    f"{fmt(was['test_accuracy'])} {fmt_interval(*intervals[0])}: the 95% intervals over seeds do "
                    "not overlap (another test set: no paired test)",
                    {"test": "95% intervals over seeds", "before": intervals[0], "after": intervals[1]},
                    name,
                )
            )
    for (name, was, now, r), p_holm in zip(paired, holm([p[3]["p_value"] for p in paired])):
        if p_holm < ALPHA:
            flags.append(
                _flag(
                    "accuracy",
                    f"{name}: test accuracy {fmt(now['test_accuracy'])}, was "
                    f"{fmt(was['test_accuracy'])} ({fmt(r['difference'], signed=True)} on the same "
                    f"test examples and seeds, 95% CI {fmt_interval(r['ci_low'], r['ci_high'])}; "
                    f"{TEST_WORDS[r['test']]}, Holm-adjusted p = {p_holm:.2g})",
                    {
                        "test": r["test"],
                        "seeds": r["seeds"],
                        "difference": r["difference"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "p_value": r["p_value"],
                        "p_holm": p_holm,
                        "alpha": ALPHA,
                    },
                    name,
                )
            )
    tests = []
    if paired:
        words = " and ".join(sorted({TEST_WORDS[p[3]["test"]] for p in paired}))
        tests.append(
            f"test accuracy of {', '.join(p[0] for p in paired)}: paired with run {before['run_id']} by seed and "
            f"test example ({words}), Holm-adjusted, alpha {ALPHA:g}"
        )
    if by_interval:
        tests.append(
            f"test accuracy of {', '.join(by_interval)}: 95% intervals over seeds (another test set than run "
            f"{before['run_id']}'s)"
        )
    return flags, notes, tests


def _diverged(row: dict) -> set[int]:
    return {s["seed"] for s in row["per_seed"] if s["diverged"]}


def _divergence(common: Pairs) -> list[dict]:
    """Seeds (in both runs) that diverged now and not before, or before and not now."""
    flags = []
    for name, was, now in common:
        both = {s["seed"] for s in was["per_seed"]} & {s["seed"] for s in now["per_seed"]}
        new = sorted((_diverged(now) - _diverged(was)) & both)
        gone = sorted((_diverged(was) - _diverged(now)) & both)
        evidence = {"before": sorted(_diverged(was)), "after": sorted(_diverged(now))}
        total = f"{len(_diverged(now))} of {len(now['per_seed'])} seeds"
        if new:
            flags.append(
                _flag(
                    "divergence",
                    f"{name}: diverged on seed {_list(new)} ({total}), not in the previous run",
                    evidence,
                    name,
                )
            )
        elif gone:
            flags.append(
                _flag(
                    "recovery", f"{name}: no longer diverges on seed {_list(gone)} ({total} diverged)", evidence, name
                )
            )
    return flags


def _list(values: list) -> str:
    return ", ".join(map(str, values))


def _cost(record: dict, name: str) -> float | None:
    """The step-cost step's seconds per training step of `name` in a run, if it measured one."""
    return ((record["variants"].get(name) or {}).get("step_cost") or {}).get("seconds_per_step")


def _step_cost(earlier: list[dict], current: dict) -> tuple[list[dict], list[str], list[str]]:
    """Per optimizer, this run's cost of a step against the earlier runs' 95% prediction interval."""
    from scipy.stats import t as student_t  # scipy.stats takes a while to import: only here

    flags, notes, judged = [], [], []
    for row in current["rows"]:
        name, now = row["optimizer"], _cost(current, row["optimizer"])
        past = [c for c in (_cost(r, name) for r in earlier) if c]
        if not now or len(past) < MIN_COST_RUNS:
            notes.append(f"{name}: step cost not judged ({len(past)} earlier runs measured it, {MIN_COST_RUNS} needed)")
            continue
        judged.append(name)
        n, mean, sd = len(past), float(np.mean(past)), float(np.std(past, ddof=1))
        half = float(student_t.ppf(1 - ALPHA / 2, n - 1)) * sd * (1 + 1 / n) ** 0.5
        if abs(now - mean) > half:
            flags.append(
                _flag(
                    "step_cost",
                    f"{name}: a training step costs {1e3 * now:.3g} ms, the {n} earlier runs {1e3 * mean:.3g} ms on "
                    f"average ({now / mean - 1:+.0%}, {'slower' if now > mean else 'faster'}; outside their 95% "
                    f"prediction interval {1e3 * (mean - half):.3g}-{1e3 * (mean + half):.3g} ms)",
                    {
                        "test": "prediction-interval",
                        "before": past,
                        "after": now,
                        "low": mean - half,
                        "high": mean + half,
                    },
                    name,
                )
            )
    tests = (
        [f"step cost of {', '.join(judged)}: 95% prediction interval of the earlier runs (Student's t)"]
        if judged
        else []
    )
    return flags, notes, tests


def _show(value: Any) -> str:
    """A setting's value for a flag's text; a float at 6 significant digits, as a person wrote it (Keras keeps a
    learning rate of 0.01 as float32, 0.009999999776482582)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _settings(before: dict, current: dict) -> list[dict]:
    """Every setting whose value differs; one the earlier run did not record at all (it predates the option)
    counts only when it is on now: an option that came in switched off changed nothing."""
    was, now = flat_settings(before), flat_settings(current)
    return [
        _flag(
            "setting",
            f"{key}: {_show(now.get(key))}, was {_show(was.get(key))}",
            {"before": was.get(key), "after": now.get(key)},
        )
        for key in sorted(set(was) | set(now))
        if was.get(key) != now.get(key) and (key in was or now[key] not in (None, False))
    ]


def _hyperparameters(before: dict, current: dict, common: Pairs) -> list[dict]:
    flags = []
    for name, _, _ in common:
        was = before["variants"][name]["hyperparameters"]
        now = current["variants"][name]["hyperparameters"]
        changed = [k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
        if changed:
            flags.append(
                _flag(
                    "hyperparameter",
                    f"{name}: " + "; ".join(f"{k} {_show(now.get(k))}, was {_show(was.get(k))}" for k in changed),
                    {k: {"before": was.get(k), "after": now.get(k)} for k in changed},
                    name,
                )
            )
    return flags


# --- the report's section ---


def history_section(current: dict, history_root: str, earlier: list[dict], changes: dict) -> tuple[dict, list[dict]]:
    """The report's History section (context, figures): this run after its suite's earlier runs, oldest first,
    test accuracy and cost per optimizer, what changed since the previous run and what was skipped."""
    context = {
        "root": history_root,
        "suite": current["suite"],
        "first": not earlier,
        "notes": changes["notes"],
        "since": changes["since"],
        "flags": [f["text"] for f in changes["flags"]],
        "not_judged": changes["not_judged"],
        "tests": changes["tests"],
    }
    if not earlier:
        return context, []
    records = [*earlier, current]
    data = trends.trend(
        [
            {"run_id": r["run_id"], "finished_at": r["finished_at"], "config": r["settings"], "rows": r["rows"]}
            for r in records
        ],
        time_key="cost_seconds",
    )
    png = charts.trend_chart(
        [r["run_id"] for r in records],
        {name: v["runs"] for name, v in data["variants"].items()},
        charts.colours(list(data["variants"])),
        time_key="cost_seconds",
        time_title="Training cost per run (steps x per-step cost)",
    )
    context |= {
        "runs": _runs_table(records),
        "accuracy": trends.accuracy_table(data),
        "cost": trends.time_table(data, "cost_seconds"),
        "differences": data["differences"],
    }
    caption = (
        "Per optimizer, the test accuracy (bars: 95% CI over seeds) and the training cost in each run of the "
        "suite, oldest first, this run last."
    )
    return context, [figure(HISTORY_PNG, "Test accuracy and cost per run", caption, png)]


def _runs_table(records: list[dict]) -> Table:
    def winner(record: dict) -> str:
        best = record["winner"]["optimizer"]
        return _answer(record) or ("none" + (f" (best: {best})" if best else ""))

    def changed(record: dict) -> str:
        changes = record["changes"]
        if not changes or changes.get("since") is None:
            return NA
        return f"{len(changes['flags'])} flag(s)" if changes["flags"] else "nothing"

    return {
        "header": ["Run", "Finished (UTC)", "Winner", "Changed since the run before"],
        "rows": [[r["run_id"], _when(r["finished_at"]), winner(r), changed(r)] for r in records],
        "numeric": False,
    }


def _when(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M}"


def notify_summary(record: dict, changes: dict | None) -> dict:
    """What a notifier needs: {suite, run_id, verdict, winner, changes: [text], changed}."""
    flags = (changes or {}).get("flags") or []
    return {
        "suite": record["suite"],
        "run_id": record["run_id"],
        "verdict": record["verdict"],
        "winner": _answer(record),
        "changes": [f["text"] for f in flags],
        "changed": bool(flags),
    }
