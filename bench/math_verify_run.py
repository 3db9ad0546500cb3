"""Runs Math-Verify (the pinned PyPI package, venv from bench/setup_math_verify.sh) on a JSONL of cases.

Input rows: {"gold", "prediction", "config"?}; output rows (same order): {"equal", "ms", "error"?}, then one final
summary line {"summary": {...}}. Called by bench/reward_compare.ts; mirrors Math-Verify's own test helper
(tests/test_all.py `compare_strings`): both sides through `parse` with the row's extraction targets, then
`verify(gold, pred, float_rounding, strict, allow_set_relation_comp)` with the library's default timeouts.
Single process, single thread (how TRL/open-r1 call it).
Usage: python bench/math_verify_run.py IN.jsonl OUT.jsonl
"""

import json
import sys
import time

from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify


def targets(cfg, gold):
    names = cfg.get("targets") or ["latex", "expr"]
    out = []
    choices = cfg.get("choices")
    g = gold.strip().strip("$").strip()
    letter = g.strip("()") if len(g.strip("()")) == 1 and g.strip("()").isupper() else None
    if choices or letter:
        letters = choices or [chr(65 + i) for i in range(max(5, ord(letter) - 64))]
        out.append(StringExtractionConfig(strings=tuple(letters)))
    for n in names:
        if n == "latex":
            out.append(LatexExtractionConfig(boxed_match_priority=0))
        elif n == "expr":
            out.append(ExprExtractionConfig())
    return out


def run_case(row):
    cfg = row.get("config") or {}
    t = targets(cfg, row["gold"])
    g = row["gold"]
    bare = not any(d in g for d in ("$", "\\boxed", "\\[", "\\("))
    # Corpus golds are bare dataset answers: wrapped in $…$ as users of the library do (a bare `3\sqrt{13}` parses
    # as 3). dev.jsonl rows come from Math-Verify's own tests and are parsed as its test helper does.
    gold = parse(f"${g}$", t) if bare and row.get("wrap_gold") else parse(g, t)
    if len(gold) == 0 and bare:
        gold = parse(f"${g}$", t)
    pred = parse(row["prediction"], t)
    return bool(
        verify(
            gold,
            pred,
            float_rounding=cfg.get("float_rounding", 6),
            strict=cfg.get("strict", True),
            allow_set_relation_comp=cfg.get("allow_set_relation_comp", False),
        )
    )


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(src, encoding="utf8") if l.strip()]
    run_case({"gold": "1", "prediction": "1"})  # warm the parser
    t0 = time.perf_counter()
    worst = 0.0
    with open(dst, "w", encoding="utf8") as f:
        for row in rows:
            s = time.perf_counter()
            err = None
            try:
                eq = run_case(row)
            except Exception as e:  # noqa: BLE001 - a crash is a verdict here
                eq, err = False, f"{type(e).__name__}: {str(e)[:200]}"
            ms = (time.perf_counter() - s) * 1000
            worst = max(worst, ms)
            rec = {"equal": eq, "ms": round(ms, 3)}
            if err:
                rec["error"] = err
            f.write(json.dumps(rec) + "\n")
        secs = time.perf_counter() - t0
        f.write(json.dumps({"summary": {"n": len(rows), "seconds": secs, "casesPerSec": len(rows) / secs, "worstMs": worst}}) + "\n")


if __name__ == "__main__":
    main()
