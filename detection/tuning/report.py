"""What a tune leaves for the user: trials.csv, history.png, importance.png and report.md."""

from __future__ import annotations

import csv
import logging
import warnings

from ..errors import writing
from ..utils.plotting import pyplot
from ..utils.runs import TuneFolder

log = logging.getLogger("detection.tune")

MIN_TRIAL_ITERS = 150  # fewer and a trial's AP tells how fast a recipe starts, not where it ends


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        changes = t.user_attrs.get("changes") or {}
        rows.append({"trial": t.number, "state": t.state.name.lower(), "AP": _num(t.value),
                     "AP_low": _num(t.user_attrs.get("AP_low")), "AP_high": _num(t.user_attrs.get("AP_high")),
                     "AP50": _num(t.user_attrs.get("AP50")),
                     "iterations": t.user_attrs.get("iterations", ""),
                     "last_check": max(t.intermediate_values) if t.intermediate_values else "",
                     "minutes": round(t.duration.total_seconds() / 60, 2) if t.duration else "",
                     "baseline": bool(t.user_attrs.get("baseline")),
                     "changes": "; ".join(f"{k}={v}" for k, v in changes.items())})
    return rows


def _num(v):
    return "" if v is None else round(float(v), 4)


def write_trials_csv(rows: list[dict], folder: TuneFolder) -> None:
    with writing(folder.trials_csv), open(folder.trials_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot_history(rows: list[dict], folder: TuneFolder) -> None:
    """AP of each finished trial on the tuning split (pruned ones at their last check) and the best so far."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in rows if r["AP"] != ""]
    colors = {"complete": "tab:blue", "pruned": "tab:gray"}
    ax.scatter([r["trial"] for r in done], [r["AP"] for r in done],
               c=[colors.get(r["state"], "tab:red") for r in done], s=25, zorder=3)
    best, line = -1.0, []
    for r in done:
        if r["state"] == "complete":
            best = max(best, r["AP"])
        line.append(best if best >= 0 else None)
    ax.step([r["trial"] for r in done], [v if v is not None else float("nan") for v in line], where="post",
            color="tab:orange", label="best so far")
    ax.set(xlabel="trial", ylabel="COCO AP on the tuning split", title="tuning history (grey: pruned)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with writing(folder.history_png):
        fig.savefig(folder.history_png, dpi=100)
    plt.close(fig)


def importances(optuna, study) -> dict[str, float]:
    """Which parameters moved the AP (Optuna's PED-ANOVA, no extra library); empty below 4 trials
    and when none stands out: with a handful of trials PED-ANOVA gives every parameter the same
    share (a BCCD tune of 4 finished trials: ten at 0.10), and a ranking of ties misleads."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 4:
        return {}
    try:
        with warnings.catch_warnings():  # "some regimes have less than 2 trials", per parameter
            warnings.simplefilter("ignore", UserWarning)
            imp = dict(optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()))
    except (RuntimeError, ValueError) as e:  # too few distinct values to say
        log.info("parameter importance: %s", e)
        return {}
    return imp if stands_out(imp) else {}


def stands_out(imp: dict[str, float]) -> bool:
    """Some parameter's importance is well above an even share (1.5x)."""
    return bool(imp) and max(imp.values()) > 1.5 * sum(imp.values()) / len(imp)


def plot_importance(imp: dict[str, float], folder: TuneFolder) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(len(imp), 2) + 1))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (share of the AP's variation)", title="which settings mattered")
    fig.tight_layout()
    with writing(folder.importance_png):
        fig.savefig(folder.importance_png, dpi=100)
    plt.close(fig)


def write_report(optuna, study, folder: TuneFolder, best, final: dict | None, start: str = "") -> None:
    """trials.csv, the plots and report.md; the summary to the log. `start`: the run folder
    the final training started from ("" for the pretrained weights)."""
    rows = trial_rows(study)
    write_trials_csv(rows, folder)
    plot_history(rows, folder)
    imp = importances(optuna, study)
    if imp:
        plot_importance(imp, folder)
    text = report_text(rows, best, imp, final, folder, start)
    with writing(folder.report_md):
        folder.report_md.write_text(text)
    log.info("%s", text)


def report_text(rows: list[dict], best, imp: dict, final: dict | None, folder: TuneFolder, start: str = "") -> str:
    states = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    base = next((r for r in rows if r["baseline"] and r["state"] == "complete"), None)
    b = next(r for r in rows if r["trial"] == best.number)
    lines = [f"# Tune {folder.dir.name}", "",
             f"{len(rows)} trials: {states['complete']} complete, {states['pruned']} pruned, {states['fail']} failed "
             "(trials.csv, history.png). Scored on the tuning split (tune_split.json), never on your validation "
             "split.",
             "", f"- best: trial {best.number}, AP {_ci(b)}: "
             + (b["changes"] or "your configuration as it is")]
    iters = [r["iterations"] for r in rows if r["state"] == "complete" and r["iterations"] not in ("", None)]
    if iters:
        lines.append(f"- each complete trial trained {min(iters)}-{max(iters)} iterations"
                     + (f"; under {MIN_TRIAL_ITERS} the trials rank how fast a recipe starts, not where it ends: "
                        "give the tune more --time" if min(iters) < MIN_TRIAL_ITERS else ""))
    if base is not None and base["trial"] != best.number:
        lines.append(f"- your configuration (trial {base['trial']}): AP {_ci(base)}; the intervals are each trial's "
                     "95% bootstrap over the tuning images" + _overlap(b, base))
    elif base is not None:
        lines.append("- your configuration was the best found" + (
            "; final/ went on from its trial's weights" if start else
            ": train it as it is with your whole time (final/ had only what the trials left)"))
    if not imp:
        lines.append(f"- what mattered: no setting stood out in {states['complete']} complete trials "
                     "(too few to tell; importance.png needs more)")
    else:
        lines.append("- what mattered most: " + ", ".join(f"{k} {v:.2f}" for k, v in list(imp.items())[:5])
                     + " (importance.png)")
    lines.append(f"- best.yaml: {folder.best_yaml} (trains as it is: tools/train_det.py --cfg {folder.best_yaml})")
    if final is not None:
        ci = final.get("intervals", {}).get("AP")
        ap = f"{final['coco']['AP']:.3f}" + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")
        lines.append(f"- final: the best configuration trained on all training images"
                     f"{f' from the weights of {start}' if start else ''} -> {folder.final.dir}; "
                     f"on your validation split AP {ap}, AP50 {final['coco']['AP50']:.3f}")
    return "\n".join(lines) + "\n"


def _overlap(best: dict, base: dict) -> str:
    """How sure the win is: the best trial's interval against your configuration's AP."""
    if best["AP_low"] == "" or best["AP_low"] > base["AP"]:
        return ""
    return ("; the best trial's interval holds your configuration's AP, so on these tuning images it is not "
            "clearly better")


def _ci(r: dict) -> str:
    if r["AP_low"] == "":
        return f"{r['AP']:.3f}"
    return f"{r['AP']:.3f} [{r['AP_low']:.3f}, {r['AP_high']:.3f}]"
