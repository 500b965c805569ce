"""Coverage of the 95 % AUROC interval at small counts: the percentile bootstrap alone against the
interval ``evaluate`` reports (the union of the bootstrap and Newcombe's score interval).

Binormal scores with a known true AUROC; 300 simulated datasets per cell, evaluated as 300
independent label columns of one ``evaluate_multilabel`` call (one bootstrap for all).

    python benchmarks/bench_interval_coverage.py [--sets 300] [--negatives 190] [--boot 500]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=300)
    ap.add_argument("--negatives", type=int, default=190)
    ap.add_argument("--boot", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from scipy.stats import norm

    from ecgfounder.eval.bootstrap import RankMetrics, bootstrap_weights, percentile_ci
    from ecgfounder.eval.metrics import evaluate_multilabel

    rng = np.random.default_rng(args.seed)
    print("true AUROC  positives  coverage: percentile  reported   mean width: percentile  reported")
    for auc in (0.75, 0.9, 0.97):
        for npos in (3, 5, 10, 20):
            y = np.zeros((npos + args.negatives, args.sets), dtype=bool)
            y[:npos] = True
            s = rng.normal(size=y.shape) + norm.ppf(auc) * np.sqrt(2) * y
            per = evaluate_multilabel(y, s, n_boot=args.boot, seed=0, micro=False, min_positives=1).per_label
            rank = RankMetrics(y, s)
            boot = np.concatenate([rank.labels(w)[0] for w in bootstrap_weights(len(y), args.boot, seed=0)])
            plo, phi, _ = percentile_ci(boot)
            lo, hi = per["auroc_lo"].to_numpy(), per["auroc_hi"].to_numpy()
            print(f"{auc:10.2f}  {npos:9d}  {np.mean((plo <= auc) & (auc <= phi)):20.3f}  {np.mean((lo <= auc) & (auc <= hi)):8.3f}"
                  f"  {np.mean(phi - plo):22.3f}  {np.mean(hi - lo):8.3f}")


if __name__ == "__main__":
    main()
