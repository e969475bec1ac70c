"""How fast `prepare` checks a dataset: kanoclip.data.check_dataset against a plain full decode of every file.

Writes a VisA-like set (JPEG photos of 1500 x 1000, half of them anomalous with a class-number PNG mask of
the same size), then decodes every file three ways, side by side:

- baseline: every image and mask fully decoded one after the other (`load_image`, `load_pair`), as a loader does;
- check_dataset with one thread (JPEG decoded at 1/8 scale, sizes from the headers, masks in full);
- check_dataset with its default thread pool (min(8, usable CPUs) threads).

    python benchmarks/bench_check.py                 # 200 images
    python benchmarks/bench_check.py --n 1000 --size 1500 1000

Prints images per second (best of 3 runs) and the speed-ups; extrapolates to VisA (10 821 images). No asserts on time.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from kanoclip.data import _cpus, check_dataset, load_image, load_pair
from common import best_time


def make_set(root: Path, n: int, size, seed=0) -> dict:
    "A one-class index of `n` smooth noisy JPEG photos; every other one anomalous with a 1/2-valued PNG mask."
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    test = []
    for i in range(n):
        base = (90 + 60 * np.sin(xx / (40 + i % 7)) * np.cos(yy / 55))[..., None] + rng.normal(0, 4, (h, w, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(root / f"{i:04d}.JPG", quality=90)
        s = dict(img_path=f"{i:04d}.JPG", mask_path="", cls_name="c", specie_name="", anomaly=i % 2)
        if i % 2:
            m = np.zeros((h, w), np.uint8); m[h // 3:h // 2, w // 4:w // 3] = 1 + i % 2
            Image.fromarray(m).save(root / f"{i:04d}.png"); s["mask_path"] = f"{i:04d}.png"
        test.append(s)
    return {"train": {"c": []}, "test": {"c": test}}


def baseline(meta, root):
    for s in meta["test"]["c"]:
        if s["mask_path"]: load_pair(root / s["img_path"], root / s["mask_path"])
        else: load_image(root / s["img_path"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, nargs=2, default=(1500, 1000))
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs of each")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        t_make, meta = best_time(make_set, root, a.n, a.size)
        print(f"{a.n} images of {a.size[0]}x{a.size[1]} ({a.n // 2} with masks) written in {t_make:.1f} s; "
              f"{_cpus()} CPU(s) usable")
        t_base, _ = best_time(baseline, meta, root, repeat=a.repeat)
        t_one, rep = best_time(check_dataset, meta, root, workers=1, repeat=a.repeat)
        t_pool, rep2 = best_time(check_dataset, meta, root, repeat=a.repeat)
        assert rep.bad == rep2.bad == [] and rep.stats == rep2.stats
        for name, t in (("full decode, 1 thread", t_base), ("check_dataset, 1 thread", t_one),
                        (f"check_dataset, {min(8, _cpus())} threads", t_pool)):
            print(f"{name:32s} {t:7.2f} s  {a.n / t:7.1f} images/s  x{t_base / t:.2f}  VisA (10821 images): {10821 * t / a.n / 60:.1f} min")
