"""``report.md``'s time-to-target section (with the budget every run had) and the
table of interleaved ratio pairs (with each side's spread)."""

from __future__ import annotations

from ..stability import MIN_SPREAD_ROUNDS, too_wide
from .analysis import epoch_points, label_key
from .formatting import fmt_n, fmt_seconds, md_table, sig3

__all__ = ["budget_text", "time_to_target_tables", "ratio_markdown", "FIRST_EPOCH_NOTE"]

# A first epoch this many times the median epoch holds compilation or warm-up.
FIRST_EPOCH_NOTE = 5.0


def budget_text(kind, budget):
    """``5 s of training``, ``2,000 epochs``; ``an unrecorded budget`` when unknown."""
    if kind == "seconds" and budget is not None:
        return f"{budget:g} s of training"
    if kind == "epochs" and budget is not None:
        return f"{int(budget):,} epochs"
    return "an unrecorded budget"


def _budget_sentence(ttt_rows):
    budgets = sorted({(r.get("budget_kind"), r.get("budget")) for r in ttt_rows},
                     key=lambda b: (str(b[0]), b[1] or 0))
    legacy = any(r.get("legacy_budget") for r in ttt_rows)
    if len(budgets) > 1:
        listed = ", ".join(budget_text(*b) for b in budgets)
        return [f"**The runs had different budgets** ({listed}): compare only rows with the "
                "same budget (each row that missed the target names its own).", ""]
    kind, budget = budgets[0]
    if kind == "seconds":
        text = (f"Budget: {budget_text(kind, budget)} per run, the same for every backend. A "
                "run stops at the end of the first epoch past it, so its epochs are what fit "
                "in that time on its backend (`--target-epochs` gives every backend the same "
                "number of epochs instead).")
        if legacy:
            text += (" These runs were recorded before budgets were: each also stopped at "
                     "10,000 epochs, whichever came first.")
    elif kind == "epochs":
        text = (f"Budget: {budget_text(kind, budget)} per run, the same for every backend, with "
                "no time limit (`--target-epochs`).")
    else:
        text = ("Budget: not recorded for these runs, so a run that did not reach the target "
                "cannot say within what.")
    return [text, ""]


def _missed(row):
    """The "reached" cell of a run that missed: the budget it was not reached within."""
    kind, budget = row.get("budget_kind"), row.get("budget")
    epochs = f"{row['epochs']:,} epochs" if row.get("epochs") is not None else "epochs unknown"
    if kind == "seconds":
        return f"**no**: not within {budget:g} s ({epochs} run)"
    if kind == "epochs":
        return f"**no**: not within {int(budget):,} epochs ({fmt_seconds(row.get('seconds'))})"
    return f"**no**: not within an unrecorded budget ({epochs} run)"


# A run's epochs whose median lies outside [t_lo / this, t_hi * this] of the epoch
# timings at the N around it disagree with them.
EPOCH_AGREEMENT = 2.0


def _noisy_epochs(row, cell):
    """Why a run's epoch times are not to be trusted, or None: their own spread
    (:func:`too_wide` over its epochs), or a median that disagrees with the
    same label's epoch timings at the measured N around the run's N."""
    median, q1, q3 = row.get("epoch_median"), row.get("epoch_q1"), row.get("epoch_q3")
    if not median:
        return None
    if q1 is not None and q3 is not None:
        why = too_wide({"median": median, "iqr": q3 - q1, "rounds": row.get("epochs") or 0})
        if why:
            return "its epoch times are noisy: " + why.replace("rounds", "epochs")
    n = row.get("n_samples")
    below = [m for m in cell if n is not None and m <= n]
    above = [m for m in cell if n is not None and m >= n]
    if not below or not above:
        return None
    lo, hi = max(below), min(above)
    t_lo, t_hi = cell[lo]["seconds_per_epoch"], cell[hi]["seconds_per_epoch"]
    if t_lo / EPOCH_AGREEMENT <= median <= t_hi * EPOCH_AGREEMENT:
        return None
    around = (f"N = {fmt_n(lo)} ({fmt_seconds(t_lo)})" if lo == hi else
              f"N = {fmt_n(lo)} ({fmt_seconds(t_lo)}) and {fmt_n(hi)} ({fmt_seconds(t_hi)})")
    return (f"its epochs (median {fmt_seconds(median)}) disagree with this label's epoch "
            f"timings at {around}: the machine was busier during this run")


def _ttt_notes(row, reached_epochs, cell=None):
    notes = []
    noisy = _noisy_epochs(row, cell or {})
    if noisy:
        notes.append(f"⚠ {noisy}")
    first, median = row.get("first_epoch_seconds"), row.get("epoch_median")
    if first and median and first > FIRST_EPOCH_NOTE * median:
        notes.append(f"first epoch {fmt_seconds(first)} against a median of "
                     f"{fmt_seconds(median)} (compilation, warm-up): counted in its seconds")
    if row.get("reached_recorded") is not None:
        notes.append(f"the record says {'reached' if row['reached_recorded'] else 'not reached'}"
                     f", but its final loss {sig3(row['final_loss'])} is "
                     f"{'above' if row['final_loss'] > row['target_loss'] else 'at or below'}"
                     f" the target {sig3(row['target_loss'])}: this row follows the losses")
    if not row["reached"] and reached_epochs:
        lo, hi = min(reached_epochs), max(reached_epochs)
        took = f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"
        notes.append(f"the runs of this mode that reached it took {took} epochs")
    return notes


def time_to_target_tables(rows, ttt_modes):
    """The budget, then per mode every time-to-target run (all N, unlike the plot)."""
    ttt_rows = [r for r in rows if r.get("kind") == "time_to_target" and r.get("mode")]
    out = ["## Time to target loss", ""]
    if not ttt_rows:
        return out + ["No time-to-target runs in the results.", ""]
    out += _budget_sentence(ttt_rows)
    points = epoch_points(rows)
    for mode in ttt_modes:
        sub = sorted((r for r in ttt_rows if r["mode"] == mode),
                     key=lambda r: (r.get("n_samples") or 0, label_key(r["label"])))
        reached_epochs = [r["epochs"] for r in sub if r["reached"] and r["epochs"] is not None]
        body = []
        for r in sub:
            per_epoch = "—"
            if r.get("epoch_median"):
                per_epoch = f"{fmt_seconds(r['epoch_median'])}"
                if r.get("epoch_q1") and r.get("epoch_q3"):
                    per_epoch += (f" ({fmt_seconds(r['epoch_q1'])}–"
                                  f"{fmt_seconds(r['epoch_q3'])})")
            notes = _ttt_notes(r, reached_epochs, points.get((r["label"], mode)))
            mark = " ⚠" if notes and notes[0].startswith("⚠") else ""
            body.append([r["label"] + mark, fmt_n(r["n_samples"]),
                         sig3(r["target_loss"]) if r["target_loss"] is not None else "—",
                         "yes" if r["reached"] else _missed(r),
                         r["epochs"] if r["epochs"] is not None else "—",
                         sig3(r["seconds"]) if r["seconds"] is not None else "—", per_epoch,
                         sig3(r["final_loss"]) if r["final_loss"] is not None else "—",
                         "; ".join(notes) or "—"])
        head = ["label", "N", "target", "reached", "epochs", "seconds",
                "epoch time, median (Q1–Q3)", "final loss", "notes"]
        out += [f"### {mode}", "", md_table(head, body, text_last=True), ""]
    out += ["Each run is one run (its seconds have no spread); the epoch-time column is the "
            "spread of its epochs.", ""]
    return out


def _side(median, q1, q3, rounds):
    """A ratio side's median (ms per epoch) with its quartiles and a mark when
    too wide; no quartiles from fewer rounds than a spread needs."""
    text = sig3(None if median is None else median * 1e3)
    if median is None or q1 is None or q3 is None or (rounds or 0) < MIN_SPREAD_ROUNDS:
        return text, False
    noisy = bool(too_wide({"median": median, "iqr": q3 - q1, "rounds": rounds or 0}))
    return f"{text} ({sig3(q1 * 1e3)}–{sig3(q3 * 1e3)}){' ⚠' if noisy else ''}", noisy


def _met(ratio, target, sense):
    """Whether ``ratio`` meets ``target`` in the direction ``sense`` (None: unknown)."""
    if target is None or sense is None:
        return None
    return ratio <= target if sense == "max" else ratio >= target


def _ratio_text(ratio, target, sense):
    """The ratio with as many digits as keep its rounding from contradicting its
    verdict (1.19987 against ≤ 1.2 is "1.19987", not "1.2")."""
    met = _met(ratio, target, sense)
    for digits in range(3, 9):
        text = f"{ratio:.{digits}g}"
        if met is None or _met(float(text), target, sense) == met and (
                float(text) != target or ratio == target):
            return text
    return repr(ratio)


def _straddles(r):
    """True when the sides' quartiles allow the ratio on either side of its target:
    from q1_a / q3_b to q3_a / q1_b."""
    quartiles = [r.get(k) for k in ("q1_a", "q3_a", "q1_b", "q3_b")]
    if r["target"] is None or None in quartiles or (r.get("rounds") or 0) < MIN_SPREAD_ROUNDS:
        return False
    q1_a, q3_a, q1_b, q3_b = quartiles
    return q1_a / q3_b <= r["target"] <= q3_a / q1_b


def _pair_name(r, with_model):
    """How the notes under the ratio table name a pair (its model where they hold several)."""
    model = f"{r['model']}, " if with_model else ""
    return f"{r['label_a']} / {r['label_b']} ({model}{r['mode']}, N = {fmt_n(r['n_samples'])})"


def ratio_markdown(ratios):
    """The interleaved pairs: each side's median and quartiles, rounds, ratio, target.

    The verdict is computed here from the ratio, the target and its sense (a
    record's own ``met`` that disagrees is named); a pair whose sides'
    quartiles allow the ratio on either side of the target is named too.
    """
    if not ratios:
        return ["No interleaved ratio runs in the results.", ""]
    spread = any(r.get("q1_a") is not None and (r.get("rounds") or 0) >= MIN_SPREAD_ROUNDS
                 for r in ratios)
    swapped = {bool(r.get("first_side_alternates")) for r in ratios}
    order = ("A, B, B, A, A, B, ..." if swapped == {True} else "A, B, A, B, ..."
             if swapped == {False} else "A, B, B, A, ... where the record says so, else A, B, "
             "A, B, ...")
    out = [f"Each pair alternates epoch by epoch ({order}) in one process; the "
           "ratio is of the two medians, so a slow spell of the machine slows both sides. "
           + ("Each side shows its median and, in brackets, Q1–Q3 of its rounds"
              if spread else "Each side shows its median (this record kept no quartiles)")
           + "; pairs are not re-run.", ""]
    body, noisy, straddle, disagree, recomputed, cards = [], [], [], [], [], []
    several_models = len({r["model"] for r in ratios}) > 1
    for r in ratios:
        name = _pair_name(r, several_models)
        sense = {"max": "≤ ", "min": "≥ "}.get(r["sense"], "? ")
        target = "—" if r["target"] is None else f"{sense}{r['target']:g}"
        met = None if r.get("other_cards") else _met(r["ratio"], r["target"], r["sense"])
        if r.get("other_cards"):
            cards.append(f"{name}: A on {r['device_a']}, B on {r['device_b']}")
        if r.get("recorded_met") is not None and met is not None and r["recorded_met"] != met:
            disagree.append(name)
        if r.get("recorded_ratio") is not None:
            recomputed.append(f"{name}: recorded {sig3(r['recorded_ratio'])}")
        verdict = "—" if met is None else ("yes" if met else "**no**")
        if met is not None and _straddles(r):
            straddle.append(name)
            verdict += " ‡"
        a, wide_a = _side(r["median_a"], r.get("q1_a"), r.get("q3_a"), r.get("rounds"))
        b, wide_b = _side(r["median_b"], r.get("q1_b"), r.get("q3_b"), r.get("rounds"))
        if wide_a or wide_b:
            noisy.append(name)
        body.append([r["label_a"], r["label_b"], r["model"], r["mode"], fmt_n(r["n_samples"]),
                     a, b, "—" if r.get("rounds") is None else r["rounds"],
                     _ratio_text(r["ratio"], r["target"], r["sense"]), target, verdict])
    header = ["A", "B", "model", "mode", "N", "A ms/epoch", "B ms/epoch", "rounds", "A / B",
              "target", "met"]
    out += [md_table(header, body, text_columns=4), ""]
    if noisy:
        out += ["⚠ a side whose IQR is above half its median: the ratio is uncertain, "
                "whatever its target says: " + "; ".join(noisy) + ".", ""]
    if straddle:
        out += ["‡ the sides' quartiles allow a ratio on either side of the target (from "
                "Q1 of A over Q3 of B to Q3 of A over Q1 of B): the verdict could go the "
                "other way in another run: " + "; ".join(straddle) + ".", ""]
    if recomputed:
        out += ["The record's ratio is not the ratio of its medians for: "
                + "; ".join(recomputed) + " (the table's is A's median over B's).", ""]
    threads = [f"{_pair_name(r, several_models)}: A at {r['threads_a']}, B at {r['threads_b']}"
               for r in ratios
               if None not in (r.get("threads_a"), r.get("threads_b"))
               and r["threads_a"] != r["threads_b"]]
    if threads:
        out += ["The sides ran at different CPU thread counts (each as its library or fit "
                "sets them), so these ratios hold the thread counts' effect too: "
                + "; ".join(threads) + ".", ""]
    if cards:
        out += ["The sides ran on different devices, so the ratio compares the devices "
                "as much as the code, and no verdict is given: " + "; ".join(cards) + ".", ""]
    if disagree:
        out += ["The record's own verdict differs from its ratio and target for: "
                + "; ".join(disagree) + " (the table's is recomputed from them).", ""]
    unknown = [r for r in ratios if r["target"] is not None and r["sense"] is None]
    if unknown:
        out += ["? a target recorded without its direction (at most or at least): no "
                "verdict.", ""]
    few = [r for r in ratios if r.get("rounds") is not None and r["rounds"] < MIN_SPREAD_ROUNDS]
    if few:
        out += [f"Fewer than {MIN_SPREAD_ROUNDS} rounds, no spread: "
                + "; ".join(f"{r['label_a']} / {r['label_b']} ({r['mode']})" for r in few)
                + ".", ""]
    return out
