"""Exact pixel AUROC + AUPRO (kanoclip.metrics) against the common approach in public code.

The common approach (as in many CLIP anomaly-detection repositories): scikit-learn's `roc_auc_score` on the
flattened pixels, and AUPRO from `skimage.measure.label` + `regionprops` evaluated at 200 evenly spaced
thresholds, keeping the points with FPR < 0.3, min-max normalising those FPRs and integrating with
`sklearn.metrics.auc`. kanoclip computes both exactly, at every distinct score, from one sort each.

    python benchmarks/bench_metrics.py                # 200 maps of 256 x 256
    python benchmarks/bench_metrics.py --n 50 --size 128

Prints times side by side, the speed-up, both AUROCs, the exact AUPRO beside the 200-threshold value and
their difference, an independent exact AUPRO computed the MVTec AD evaluation way (argsort of all pixels)
as a check, and the peak memory kanoclip's AUPRO allocates (tracemalloc). No asserts on time.
"""
import argparse
import tracemalloc

import numpy as np
from scipy import ndimage
from skimage import measure
from sklearn.metrics import auc, roc_auc_score

from kanoclip.metrics import pixel_aupro, pixel_auroc, pixel_metrics
from common import best_time


def make_data(n=200, size=256, seed=0):
    "Smooth anomaly maps in [0, 1] with higher values on the defects, and masks of 1-3 irregular blobs on every other map."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    masks = np.zeros((n, size, size), bool)
    bumps = np.zeros((n, size, size), np.float32)
    for i in range(n):
        anomalous = i % 2 == 0
        for _ in range(rng.integers(1, 4) if anomalous else rng.integers(0, 2)):
            cy, cx = rng.uniform(0.15, 0.85, 2) * size
            ry, rx = rng.uniform(0.015, 0.1, 2) * size
            a = rng.uniform(0, np.pi)
            u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / rx
            v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / ry
            wobble = 0.25 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6))
            blob = u * u + v * v < 1 + wobble
            if anomalous:
                masks[i] |= blob
                bumps[i] += rng.uniform(0.3, 1.0) * blob      # some defects are found better than others
            else:
                bumps[i] += rng.uniform(0.1, 0.4) * blob      # a false alarm on a normal image
    background = ndimage.gaussian_filter(rng.normal(size=masks.shape).astype(np.float32), (0, 6, 6)) * 6
    maps = 0.35 * background + ndimage.gaussian_filter(bumps, (0, 3, 3)) + 0.05 * rng.normal(size=masks.shape)
    maps = (maps - maps.min()) / (maps.max() - maps.min())
    return maps.astype(np.float32), masks


def baseline_aupro(masks, maps, n_thresholds=200, fpr_limit=0.3):
    "AUPRO the common way: label + regionprops at each of `n_thresholds` evenly spaced thresholds."
    binary = np.zeros_like(maps, dtype=bool)
    lo, hi = maps.min(), maps.max()
    normal = ~masks
    n_normal = normal.sum()
    fprs, pros = [], []
    for th in np.arange(lo, hi, (hi - lo) / n_thresholds):
        binary[maps <= th], binary[maps > th] = False, True
        overlaps = []
        for b, m in zip(binary, masks):
            for region in measure.regionprops(measure.label(m)):
                rows, cols = region.coords[:, 0], region.coords[:, 1]
                overlaps.append(b[rows, cols].sum() / region.area)
        fprs.append(np.logical_and(normal, binary).sum() / n_normal)
        pros.append(np.mean(overlaps))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < fpr_limit
    fprs = fprs[keep]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return auc(fprs, pros[keep])


def full_sort_aupro(masks, maps, fpr_limit=0.3):
    "Exact AUPRO the MVTec AD evaluation way (an independent check at scale): argsort all pixels, cumsum, merge ties."
    labels = np.zeros(masks.shape, np.int64)
    n_regions, sizes = 0, [1]                                     # sizes[0]: placeholder for normal pixels
    for i, m in enumerate(masks):
        lab, r = ndimage.label(m, structure=np.ones((3, 3)))
        labels[i] = np.where(lab > 0, lab + n_regions, 0)
        sizes += list(np.bincount(lab.ravel())[1:]); n_regions += r
    order = np.argsort(maps.ravel())[::-1]
    s, lab = maps.ravel()[order], labels.ravel()[order]
    fpr = np.cumsum(lab == 0) / np.sum(lab == 0)
    pro = np.cumsum(np.where(lab > 0, 1.0 / (n_regions * np.array(sizes, float)[lab]), 0.0))
    last = np.append(s[1:] != s[:-1], True)                       # one point per distinct score
    x, y = np.append(0.0, fpr[last]), np.append(0.0, np.minimum(pro[last], 1.0))
    k = np.searchsorted(x, fpr_limit)
    y_lim = y[k - 1] + (y[k] - y[k - 1]) * (fpr_limit - x[k - 1]) / (x[k] - x[k - 1])
    x, y = np.append(x[:k], fpr_limit), np.append(y[:k], y_lim)
    return float(np.trapezoid(y, x) / fpr_limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="number of maps")
    ap.add_argument("--size", type=int, default=256, help="map height and width")
    ap.add_argument("--thresholds", type=int, default=200, help="thresholds of the baseline AUPRO")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    maps, masks = make_data(args.n, args.size, args.seed)
    n_px = maps.size
    n_regions = sum(measure.label(m).max() for m in masks)
    print(f"{args.n} maps of {args.size} x {args.size} = {n_px / 1e6:.1f} M pixels, "
          f"{int((masks.reshape(args.n, -1).any(1)).sum())} anomalous maps, {n_regions} regions, "
          f"{masks.mean():.2%} anomalous pixels, {len(np.unique(maps)) / 1e6:.2f} M distinct scores")

    t_ours, (auroc_ours, aupro_ours) = best_time(lambda: (pixel_auroc(maps, masks), pixel_aupro(maps, masks)), repeat=3)
    t_one, pm = best_time(lambda: pixel_metrics(maps, masks), repeat=3)
    t_sk, auroc_sk = best_time(lambda: roc_auc_score(masks.ravel(), maps.ravel()))
    t_pro, aupro_base = best_time(lambda: baseline_aupro(masks, maps, args.thresholds))
    t_base = t_sk + t_pro

    t_full, aupro_full = best_time(lambda: full_sort_aupro(masks, maps))

    tracemalloc.start()
    pixel_aupro(maps, masks)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print()
    print(f"{'':36s}{'kanoclip (exact)':>18s}{'common approach':>18s}")
    print(f"{'time pixel AUROC + AUPRO [s]':36s}{t_ours:18.2f}{t_base:18.2f}"
          f"   (sklearn AUROC {t_sk:.2f} s + {args.thresholds}-threshold AUPRO {t_pro:.2f} s)")
    print(f"{'speed-up':36s}{t_base / t_ours:17.1f}x")
    print(f"{'pixel AUROC':36s}{auroc_ours:18.12f}{auroc_sk:18.12f}   difference {auroc_ours - auroc_sk:+.2e}")
    print(f"{'AUPRO @ FPR 0.3':36s}{aupro_ours:18.12f}{aupro_base:18.12f}   difference "
          f"{aupro_ours - aupro_base:+.2e} (exact minus {args.thresholds}-threshold)")
    print(f"{'check: full-sort AUPRO (MVTec way)':36s}{aupro_full:18.12f}   difference {aupro_ours - aupro_full:+.2e}, "
          f"{t_full:.2f} s")
    print(f"{'all 4 pixel metrics, one pass [s]':36s}{t_one:18.2f}   "
          + ", ".join(f"{k} {v:.4f}" for k, v in pm.items()))
    print(f"{'peak memory of pixel_aupro()':36s}{peak / 2**20:15.0f} MiB   = {peak / n_px:.1f} bytes per pixel "
          f"(inputs: {maps.nbytes / 2**20:.0f} MiB maps + {masks.nbytes / 2**20:.0f} MiB masks)")


if __name__ == "__main__":
    main()
