"""The benchmark suite's report: labels, issue 4's targets, and the plain-text table of a run's cases
(the contestants and the timing loop are in ``gradc.tools.peers`` / ``gradc.tools.timing``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradc.tools.peers import LABELS as MLP_LABELS

LABELS = {**MLP_LABELS, "hand_numba": "hand Numba loop", "sympy": "sympy lambdify", "sympy_cse": "lambdify cse"}


def target_status(case: dict[str, Any]) -> str:
    """gradc against the case's ``target``: ``{"max_ratio": r}`` (ratio to the reference at most r) and/or
    ``{"beat": [peer names] or "all"}`` (no slower than those peers). Returns 'met: ...', 'missed: ...' or
    '?' when gradc or the named rivals were not timed."""
    target = case.get("target") or {}
    ok = {r["name"]: r for r in case["contestants"] if r["status"] == "ok"}
    gradc = ok.get("gradc")
    if gradc is None or not target:
        return "?"
    checks, met = [], True
    if "max_ratio" in target:
        checks.append(f"ratio {gradc['ratio']:.2f} (goal <= {target['max_ratio']})")
        met &= gradc["ratio"] <= target["max_ratio"]
    beat = target.get("beat")
    if beat:
        rivals = [r for n, r in ok.items() if n not in ("gradc", case.get("reference"))
                  and (beat == "all" or n in beat)]
        if not rivals:
            return "?"
        slower = [f"{LABELS.get(r['name'], r['name'])} {r['ms']:.3g} ms" for r in rivals if gradc["ms"] > r["ms"]]
        checks.append(f"slower than {', '.join(slower)}" if slower else f"faster than all {len(rivals)} peers")
        met &= not slower
    return ("met: " if met else "missed: ") + "; ".join(checks)


def format_table(cases: list[dict[str, Any]], title: str = "", labels: Mapping[str, str] | None = None) -> str:
    """A plain-text table: per case a header line, one row per timed contestant (median ms, ratio to the
    reference, interquartile range, max error against the reference), then the skipped and failed ones."""
    labels = {**LABELS, **(labels or {})}
    header = f"  {'contestant':<18} {'ms (median)':>12} {'ratio':>8} {'IQR ms':>10} {'max err':>9} {'samples':>9}"
    lines = [title] if title else []
    lines += [header, "  " + "-" * (len(header) - 2)]
    for case in cases:
        status = target_status(case)
        lines.append(case.get("label", case.get("name", "?")) + (f"   [target {status}]" if status != "?" else ""))
        for r in case["contestants"]:
            if r["status"] != "ok":
                continue
            who = labels.get(r["name"], r["name"]) + (f" ({r['blas']})" if "blas" in r else "")
            who += " *" if r["name"] == case.get("reference") else ""
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
            t = r["timing"]
            lines.append(f"  {who:<18} {r['ms']:>12.4g} {ratio:>8} {t['iqr_ms']:>10.3g} {r['error']:>9.1e} "
                         f"{t['samples']:>4}x{t['number']:<4}")
        skipped = [r for r in case["contestants"] if r["status"] == "skipped"]
        for note in dict.fromkeys(r["note"] for r in skipped):
            names = ", ".join(labels.get(r["name"], r["name"]) for r in skipped if r["note"] == note)
            lines.append(f"  skipped ({note}): {names}")
        for r in case["contestants"]:
            if r["status"] == "failed":
                lines.append(f"  FAILED {labels.get(r['name'], r['name'])}: {r['note']}")
    lines.append("* = the reference of the ratio column (ratio < 1: faster than it); max err = worst relative "
                 "error of value/gradients vs the oracle; samples = samples x calls per sample")
    return "\n".join(lines)
