"""Audit: recall and precision of misgraded-reference detection on planted items.

Usage::

    python bench/bench_audit.py            # 20 seeds x 400 items, 6 models
    python bench/bench_audit.py --quick    # 5 seeds

Each seed writes a synthetic store: 400 items, 5% of them planted with a wrong reference
(``misgraded``). Six stub models of known accuracy answer every item: the three strong ones
(0.95, 0.9, 0.85) answer the *truth* with that probability on every item, planted ones
included, so they also make their own mistakes on planted items; when wrong, half of their
wrong answers are the item's shared misconception and half a guess of their own. The three
weak ones (0.5, 0.35, 0.2) give the shared misconception for 90% of their wrong answers, so
weak models agree against a correct reference on most items. A flag is a
``strong_models_agree_against_reference`` suspect; recall = planted items flagged / planted;
precision = planted items flagged / items flagged.

A second scenario runs only the three weak models: any flag there would come from weak runs
agreeing, which the audit must never do.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from posttrain.analysis.synthetic import AUDIT_STRONG as STRONG
from posttrain.analysis.synthetic import AUDIT_WEAK as WEAK
from posttrain.analysis.synthetic import audit_scenario as scenario


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args()
    seeds = range(5 if args.quick else 20)
    true_pos = planted_total = flagged_total = weak_flags = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in seeds:
            planted, flagged = scenario(folder, seed, args.items, STRONG + WEAK)
            true_pos += len(planted & flagged)
            planted_total += len(planted)
            flagged_total += len(flagged)
            _planted, weak_only = scenario(folder, seed, args.items, WEAK)
            weak_flags += len(weak_only)
    recall = true_pos / planted_total
    precision = true_pos / flagged_total if flagged_total else 1.0
    print(f"| audit on planted misgraded items ({len(seeds)} seeds x {args.items} items) "
          "| value |")
    print("| --- | --- |")
    print(f"| planted items | {planted_total} |")
    print(f"| flagged | {flagged_total} (true {true_pos}) |")
    print(f"| recall | {recall:.3f} |")
    print(f"| precision | {precision:.3f} |")
    print(f"| flags from the weak models alone | {weak_flags} |")


if __name__ == "__main__":
    main()
