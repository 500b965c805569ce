"""Bootstrap speed: 150 labels × 2,000 records × 1,000 resamples, against a scikit-learn loop.

Prints the wall time of the vectorised evaluation (per-label AUROC, AUPRC, sensitivity,
specificity, PPV, NPV, F1 with percentile intervals, plus macro / weighted / micro summaries and
the micro AUROC/AUPRC intervals), and the ratio against the naive approach measured in the same
run: scikit-learn's ``roc_auc_score`` + ``average_precision_score`` + ``confusion_matrix`` called
per label and per resample on a subset, extrapolated to the full problem.  The subset's values
are checked to agree to 1e-12.

    python benchmarks/bench_bootstrap.py [--labels 150] [--records 2000] [--boot 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=int, default=150)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--naive-labels", type=int, default=5, help="labels in the scikit-learn reference subset")
    ap.add_argument("--naive-boot", type=int, default=40, help="resamples in the scikit-learn reference subset")
    args = ap.parse_args()

    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    from ecgfounder.eval.bootstrap import bootstrap_weights
    from ecgfounder.eval.metrics import evaluate_multilabel

    rng = np.random.default_rng(0)
    n, k, b = args.records, args.labels, args.boot
    prev = rng.uniform(0.01, 0.3, k)
    y = rng.random((n, k)) < prev
    s = 1 / (1 + np.exp(-(rng.normal(size=(n, k)) + 2 * y - 2)))
    thr = np.full(k, 0.5)

    t0 = time.perf_counter()
    res = evaluate_multilabel(y, s, thresholds=thr, n_boot=b, seed=0)
    t_vec = time.perf_counter() - t0

    # naive reference on a subset: the same resamples, one scikit-learn call per label and resample
    w = next(bootstrap_weights(n, args.naive_boot, seed=0, chunk=args.naive_boot))
    sub = range(args.naive_labels)
    t0 = time.perf_counter()
    ref = np.empty((args.naive_boot, len(sub), 2))
    for r in range(args.naive_boot):
        idx = np.repeat(np.arange(n), w[r])
        for j in sub:
            ref[r, j, 0] = roc_auc_score(y[idx, j], s[idx, j])
            ref[r, j, 1] = average_precision_score(y[idx, j], s[idx, j])
            confusion_matrix(y[idx, j], s[idx, j] >= thr[j], labels=[False, True])
    t_naive_sub = time.perf_counter() - t0
    t_naive = t_naive_sub / (args.naive_boot * len(sub)) * (b * k)

    from ecgfounder.eval.bootstrap import weighted_auroc_ap

    au, apv = weighted_auroc_ap(y[:, list(sub)], s[:, list(sub)], w)
    err = max(np.abs(au - ref[:, :, 0]).max(), np.abs(apv - ref[:, :, 1]).max())

    print(f"problem: {k} labels x {n} records x {b} resamples (record-level bootstrap)")
    print(f"vectorised evaluate_multilabel (7 metrics + CIs + macro/weighted/micro): {t_vec:.2f} s")
    print(f"scikit-learn loop: {t_naive_sub:.2f} s for {len(sub)} labels x {args.naive_boot} resamples "
          f"-> {t_naive:.0f} s extrapolated to the full problem")
    print(f"ratio (naive / vectorised): {t_naive / t_vec:.0f}x")
    print(f"max |difference| vs scikit-learn on the subset: {err:.1e}")
    print(f"macro AUROC {res.summary.loc['macro', 'auroc']:.4f} "
          f"({res.summary.loc['macro', 'auroc_lo']:.4f}-{res.summary.loc['macro', 'auroc_hi']:.4f})")
    if t_vec > 60:
        print("WARNING: slower than the one-minute target")


if __name__ == "__main__":
    main()
