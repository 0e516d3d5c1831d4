"""Who won, and does the evidence say so? Significance against the winner, and the verdict in words.

The candidate winner is the contender (comparison.contenders) with the best
mean test accuracy whose every seed trained without diverging: an optimizer
that blew up on one seed in three is not a recommendation, whatever its
other seeds scored. It is then tested against every other contender that has
at least one non-diverged seed (components.report.significance). The
verdict names it the winner only when every one of those differences is
significant; otherwise it says which ones show no significant difference.
"""

from __future__ import annotations

from optbench.components.results.row import NON_FINITE, contenders, fmt, fmt_interval, fmt_time
from optbench.components.results.sequential import UNDECIDED
from optbench.components.results.significance import TEST_WORDS, compare_with_winner, scored_trials
from optbench.components.shared.predictions import Predictions
from optbench.components.shared.schema import DEFAULT_THRESHOLDS


def _correct(row: dict, predictions: Predictions) -> dict:
    """seed -> bool [N] for the row's scored trials."""
    return {s["seed"]: predictions.correct(s["trial"]) for s in scored_trials(row, predictions)}


def candidate(rows: list[dict]) -> dict | None:
    """The contender with the best mean test accuracy among those with no diverged seed (rows are ranked)."""
    return next((r for r in contenders(rows) if r["status"] == "ok" and r["test_accuracy"] is not None), None)


def significance(
    rows: list[dict],
    predictions: Predictions | None,
    margin: float = 0.0,
    test_limited: bool = False,
    step_cost: dict | None = None,
) -> dict | None:
    """Test the candidate against every other contender; mark `best` (the candidate), `winner` (it is
    significantly better than all), `p_vs_winner` and `significant_vs_winner` on the rows. None when there is
    nothing to test.

    For an undecided pair, what would decide it (significance.to_decide; `test_limited`: the run evaluated on
    part of the test set) and what its extra seeds cost: each of the two variants trains the missing trials, each
    at its row's mean cost (steps x per-step cost, timed alone by the step-cost step). The device the costs were
    timed on is `step_cost`'s (the step-cost step's step_cost.json), kept as `timed_on`."""
    best = candidate(rows)
    if best is None:
        return None
    best["best"] = True
    if predictions is None:
        return None
    correct = {r["optimizer"]: _correct(r, predictions) for r in contenders(rows) if r["status"] not in NON_FINITE}
    correct = {name: c for name, c in correct.items() if c}
    if best["optimizer"] not in correct or len(correct) < 2:
        return None
    result = compare_with_winner(correct, best["optimizer"], margin=margin, test_limited=test_limited)
    if not result["comparisons"]:  # no other variant shares a seed with the candidate
        return None
    device = (step_cost or {}).get("device")
    result["timed_on"] = (
        {"device": device, "device_name": step_cost.get("device_name")} if step_cost and device else None
    )
    by_name = {r["optimizer"]: r for r in rows}
    best["winner"] = result["winner_significant"]
    for c in result["comparisons"]:
        other = by_name[c["other"]]
        other["p_vs_winner"] = c["p_holm"]
        other["significant_vs_winner"] = c["significant"]
        other["detectable_vs_winner"] = c["detectable"]
        other["equivalent_to_winner"] = c["equivalent"]
        todo = c["to_decide"]
        if todo is None:
            continue
        extra = 0 if todo["seeds"] is None else todo["seeds"] - len(c["seeds"])
        costs = (best["cost_seconds"], other["cost_seconds"])
        todo["trials"] = 2 * extra
        todo["cost_seconds"] = extra * sum(costs) if extra and None not in costs else None
        other["seeds_to_decide"] = todo["seeds"]
        other["cost_to_decide_seconds"] = todo["cost_seconds"]
        other["examples_to_decide"] = todo["examples"]
    return result


def fault_sentence(row: dict) -> str:
    """What a variant whose every seed hit a numerical fault is: the step and the weight, not divergence."""
    where = "; ".join(
        f"seed {f['seed']} at step {f['step']}" + (f" ({f['weight']})" if f["weight"] else "") for f in row["faults"]
    )
    return (
        f"{row['optimizer']} hit a numerical fault: its update turned a weight non-finite before the loss ever "
        f"rose ({where}). That is a fault of its implementation on this network, not divergence; it is left out "
        "of the comparison."
    )


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _accuracy(row: dict) -> str:
    """ "0.9875 (95% CI [0.9861, 0.9889], 3 seeds)", or just the number with one seed."""
    if row["test_accuracy_ci_low"] is None:
        return fmt(row["test_accuracy"])
    interval = fmt_interval(row["test_accuracy_ci_low"], row["test_accuracy_ci_high"])
    return f"{fmt(row['test_accuracy'])} (95% CI {interval}, {row['seeds_ok']} seeds)"


def _lead(rows: list[dict]) -> tuple[dict | None, dict | None, str]:
    """(best, runner-up, the sentence's start: who has the best test accuracy and by how much), or no best and
    the whole sentence when no optimizer has usable test metrics."""
    ranked = [r for r in contenders(rows) if r["test_accuracy"] is not None]
    best = candidate(rows)
    if best is None:
        by_val = [r for r in contenders(rows) if r["val_accuracy_last"] is not None and r["status"] == "ok"]
        return (
            None,
            None,
            "No optimizer has usable test metrics"
            + (
                f"; by final validation accuracy the best was {by_val[0]['optimizer']} "
                f"({fmt(by_val[0]['val_accuracy_last'])})."
                if by_val
                else "."
            ),
        )
    others = [r for r in ranked if r is not best]
    runner = others[0] if others else None
    lead = f"{best['optimizer']} has the best test accuracy, {_accuracy(best)}"
    if runner is not None:
        lead += (
            f", {fmt(best['test_accuracy'] - runner['test_accuracy'])} ahead of {runner['optimizer']} "
            f"({fmt(runner['test_accuracy'])})"
        )
    return best, runner, lead


def _lead_sentence(rows: list[dict]) -> str:
    best, _, lead = _lead(rows)
    return f"{lead}." if best else lead


def _winner_sentence(rows: list[dict], sig: dict | None) -> str:
    best, runner, lead = _lead(rows)
    if best is None:
        return lead
    if sig is None:
        why = "only one optimizer could be tested" if runner is None else "no paired per-example predictions"
        return f"{lead}; significance not tested ({why}), so no winner is declared."
    comparisons = sig["comparisons"]
    method = _names(sorted({TEST_WORDS[c["test"]] for c in comparisons}))
    if sig["winner_significant"]:
        worst_p = max(c["p_holm"] for c in comparisons)
        return (
            f"{best['optimizer']} wins: test accuracy {_accuracy(best)}"
            + (
                f", {fmt(best['test_accuracy'] - runner['test_accuracy'])} ahead of the runner-up "
                f"{runner['optimizer']} ({fmt(runner['test_accuracy'])})"
                if runner
                else ""
            )
            + f"; its lead over every other optimizer is significant ({method}; largest Holm-adjusted "
            f"p = {worst_p:.2g}, alpha {sig['alpha']:g})."
        )
    tied = [c for c in comparisons if not c["significant"]]
    beaten = [c["other"] for c in comparisons if c["significant"] and c["difference"] > 0]
    if not tied:  # on the seeds they share, some variant is significantly ahead of the best mean
        ahead = [c["other"] for c in comparisons if c["significant"] and c["difference"] <= 0]
        return f"{lead}, but on their shared seeds {_names(ahead)} did significantly better: no single winner."
    details = "; ".join(
        f"{c['other']}: difference {fmt(c['difference'], signed=True)}, 95% CI "
        f"{fmt_interval(c['ci_low'], c['ci_high'])}, Holm-adjusted p = {c['p_holm']:.2g}, {outcome(c, sig)}"
        for c in tied
    )
    text = (
        f"{lead}, but there is no significant difference between {best['optimizer']} and "
        f"{_names([c['other'] for c in tied])} ({details}; {method}, alpha {sig['alpha']:g}"
        + ("" if all(c["equivalent"] for c in tied) else f", detectable at {sig['power']:.0%} power")
        + "): no single winner."
    )
    if beaten:
        text += f" {best['optimizer']} is significantly better than {_names(beaten)}."
    return text


def outcome(comparison: dict, sig: dict) -> str:
    """What a test against the best that found no significant difference decided: equivalent, or undecided, what
    it could have seen and what would decide it (`_to_decide_words`)."""
    if comparison["equivalent"]:
        return f"equivalent within {sig['margin']:g}"
    return (
        f"undecided: this run could only detect differences of {comparison['detectable']:.3f} or more; "
        + _to_decide_words(comparison, sig["timed_on"])
    )


def _to_decide_words(comparison: dict, timed_on: dict | None) -> str:
    """ "about 9 seeds would decide it (12 more trials, 3:20 of training, 0.06 GPU-hours on NVIDIA H200)", "at
    least ..." with one seed, "no number of seeds would decide it with this test set", and on a limited test set
    the test examples that would."""
    todo, seeds = comparison["to_decide"], len(comparison["seeds"])
    examples = f"{todo['examples']:,} test examples" if todo["examples"] else None
    if todo["seeds"] is None:
        return "no number of seeds would decide it with this test set" + (f" ({examples} would)" if examples else "")
    why = "one seed cannot tell training noise from test-set noise; " if todo["seeds_at_least"] else ""
    cost = f", {_training(todo['cost_seconds'], timed_on)}" if todo["cost_seconds"] is not None else ""
    return (
        f"{'at least' if todo['seeds_at_least'] else 'about'} {todo['seeds']} seeds would decide it "
        f"({why}{todo['trials']} more trials{cost})"
        + (f", or {examples} with {seeds} seed{'s' if seeds > 1 else ''}" if examples else "")
    )


def _training(seconds: float, timed_on: dict | None) -> str:
    """ "3:20 of training", with the device-hours and the device the per-step costs were timed on when known:
    GPU-hours only on a GPU."""
    if timed_on is None:
        return f"{fmt_time(seconds)} of training"
    hours = seconds / 3600
    amount = f"{hours:,.2f}" if hours >= 0.01 else "under 0.01"
    gpu = timed_on["device"] == "GPU"
    where = (timed_on["device_name"] or "the GPU") if gpu else f"the {timed_on['device']}"
    return f"{fmt_time(seconds)} of training, {amount} {'GPU-hours' if gpu else 'hours'} on {where}"


def _convergence_sentence(rows: list[dict]) -> str | None:
    """The cheapest to converge: first, in cost (steps x per-step cost, not wall time), to the highest
    validation-accuracy target that some variant reached on every seed."""
    ok = [r for r in contenders(rows) if r["status"] == "ok"]
    targets = sorted({t for r in ok for t in r["time_to_accuracy"]}, key=float, reverse=True)
    for target in targets:
        reached = [
            r
            for r in ok
            if (hit := r["time_to_accuracy"].get(target))
            and hit["reached"] == hit["of"]
            and hit.get("cost_seconds") is not None
        ]
        if reached:
            fastest = min(reached, key=lambda r: r["time_to_accuracy"][target]["cost_seconds"])
            hit = fastest["time_to_accuracy"][target]
            average = " on average" if hit["reached"] > 1 else ""
            return (
                f"Cheapest to converge: {fastest['optimizer']} reached {target} validation accuracy first, "
                f"after {fmt_time(hit['cost_seconds'])} of training steps{average} (epoch {hit['epoch']:.3g}; "
                "steps times each optimizer's per-step cost, timed alone)."
            )
    return None


def _thresholds_words(evaluation: dict, baseline: str | None) -> str:
    """The blessing rule in words, saying when it is optbench's default rather than the suite's own."""
    t = evaluation.get("thresholds") or {}
    words = []
    if "min_accuracy" in t:
        words.append(f"test accuracy at least {t['min_accuracy']:g}")
    if "max_drop_vs_baseline" in t and baseline:
        words.append(f"at most {t['max_drop_vs_baseline']:g} below {baseline}")
    rule = " and ".join(words)
    return (
        f"{rule}; the default rule: clearly above chance, not far below the baseline"
        if words and t == DEFAULT_THRESHOLDS
        else rule
    )


def _protocol_sentence(rows: list[dict], tuning: dict | None) -> str:
    """Which question the verdict answers: rankings follow the tuning protocol."""
    if not tuning:
        swept = (
            " (with the learning-rate sweep's tuned variants beside them)" if any(r["lr_sweep"] for r in rows) else ""
        )
        return (
            f"This answers the question at each optimizer's default learning rate{swept}; "
            "--protocol tune-confirm answers it with each optimizer tuned."
        )
    seeds = max(r["seeds_total"] for r in rows)
    return (
        "Protocol: tune, then confirm: each optimizer's learning rate was chosen on validation accuracy on seed "
        f"{', '.join(map(str, tuning['tuning_seeds']))}, then its default and its tuned learning rate were run on "
        f"{seeds} seed{'s' if seeds > 1 else ''}; this answers the question with each optimizer tuned, and at its "
        "defaults."
    )


def mark_decisions(rows: list[dict], record: dict) -> None:
    """Set each row's decision against the leader as the sequential test left it (the leader's stays None)."""
    for r in rows:
        if r["optimizer"] in record["contenders"]:
            decided = record["decisions"].get(r["optimizer"])
            r["decision_vs_leader"] = decided["decision"] if decided else UNDECIDED
            r["decided_at_seeds"] = decided["seeds"] if decided else None


def sequential_sentence(record: dict) -> str:
    """What the seeds-until-decided test found, pair by pair, and when: the words of the verdict and its section."""
    leader, decisions = record["leader"], record["decisions"]

    def named(kind: str) -> list[str]:
        return [
            f"{c} (at {decisions[c]['seeds']} seeds)"
            for c in record["contenders"]
            if decisions.get(c, {}).get("decision") == kind
        ]

    found = []
    if better := named("better"):
        found.append(f"{leader} is better than {_names(better)}")
    if equivalent := named("equivalent"):
        found.append(f"equivalent within {record['margin']:g} to {_names(equivalent)}")
    if worse := named("worse"):
        found.append(f"{_names(worse)} did better than {leader}")
    if open_ := [c for c in record["contenders"] if c not in decisions]:
        last = {p["other"]: p for p in record["looks"][-1]["pairs"]} if record["looks"] else {}
        could = [f"{c} (could detect {last[c]['detectable']:.3f} or more)" if c in last else c for c in open_]
        found.append(f"still undecided against {_names(could)} when the budget of {record['max_seeds']} seeds ran out")
    first = record["first_seeds"]
    head = (
        f"Seeds until decided ({record['spending']}; alpha {record['alpha']:g} over every pair; a look from 2 seeds "
        f"up to {record['max_seeds']}): {leader} led after the run's {first} seed{'s' if first > 1 else ''}"
    )
    wins = record["stopped"] == "decided" and len(better) == len(record["contenders"])
    return f"{head}; " + "; ".join(found) + (f": {leader} wins." if wins else ".")


def verdict(
    rows: list[dict],
    sig: dict | None,
    evaluation: dict | None,
    baseline: str | None,
    tuning: dict | None = None,
    sequential: dict | None = None,
) -> str:
    """One paragraph that answers the question from the numbers: the protocol it answers, winner and margin,
    significance (the seeds-until-decided test's decisions when the run added seeds by it: tests made after
    the fact on adaptively chosen seeds would overstate the evidence), the cheapest to converge, and every
    variant that diverged, stopped or failed the thresholds."""
    evaluation = evaluation or {}
    parts = [
        _lead_sentence(rows) + " " + sequential_sentence(sequential) if sequential else _winner_sentence(rows, sig)
    ]
    convergence = _convergence_sentence(rows)
    if convergence:
        parts.append(convergence)
    shown = contenders(rows)  # the rest of a learning-rate sweep has its own table
    for r in shown:
        at = f" at epoch {r['diverged_at_epoch']}" if r["diverged_at_epoch"] else ""
        if r["status"] == "diverged":
            parts.append(f"{r['optimizer']} diverged{at} (non-finite loss) and is left out of the comparison.")
        elif r["status"] == "fault":
            parts.append(fault_sentence(r))
        elif r["status"] == "partial":
            parts.append(
                f"{r['optimizer']} diverged on {len(r['diverged_seeds'])} of {r['seeds_total']} seeds "
                f"(seed {_names([str(s) for s in r['diverged_seeds']])}{at}); its figures are over the "
                f"other {r['seeds_ok']}."
            )
    stopped = [
        f"{r['optimizer']} at epoch {r['stopped_at_epoch']}"
        + ("" if r["seeds_total"] == 1 else f" ({len(r['stopped_seeds'])} of {r['seeds_total']} seeds)")
        for r in shown
        if r["stopped_seeds"]
    ]
    if stopped:
        parts.append(
            f"Stopped early by the median stopping rule (validation accuracy below the median of the other "
            f"trials at the same epoch): {_names(stopped)}; a stopped trial is not scored and takes no part in "
            "the significance tests."
        )
    missing = [
        r["optimizer"] for r in shown if r["test_accuracy"] is None and r["status"] not in (*NON_FINITE, "stopped")
    ]
    if missing:
        parts.append(f"No test metrics for {_names(missing)} (evaluation missing).")
    thresholds = _thresholds_words(evaluation, baseline)
    judged = [r for r in shown if r["blessed"] is not None]
    if thresholds and judged:
        failed = [r["optimizer"] for r in judged if not r["blessed"]]
        parts.append(
            f"Not blessed ({thresholds}): {_names(failed)}."
            if failed
            else f"Every optimizer is blessed ({thresholds})."
        )
    parts.append(_protocol_sentence(rows, tuning))
    return " ".join(parts)
