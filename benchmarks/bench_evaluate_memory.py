"""Peak memory of `evaluate` on a class without masks (HeadCT, Br35H, COVID-19 have none), against the size of the maps.

Pixel metrics are undefined without masks, so evaluation needs only the image scores; the maps of such a class are not
kept. Peak memory is what numpy allocates (tracemalloc; torch's own buffers are not counted, and are the same for every
class size), for a generated class of N images with its masks removed from the index, at the tiny model's input size.
Run it against another checkout (PYTHONPATH=that/checkout) to compare with earlier code:

    python benchmarks/bench_evaluate_memory.py --sizes 16 64 256
"""
import argparse, tempfile, tracemalloc
from pathlib import Path

import torch

from kanoclip.data import load_meta, write_meta
from kanoclip.evaluate import evaluate
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.synthetic import make_synthetic


def maskless_class(root: Path, n: int) -> Path:
    "A generated class of `n` images (half anomalous) whose index lists no mask."
    root = make_synthetic(root, classes=["ring"], n_train=0, n_normal=n // 2, n_anomalous=n - n // 2, size=64)
    meta = load_meta(root); meta["test"]["ring"] = [dict(s, mask_path="") for s in meta["test"]["ring"]]
    write_meta(meta, root)
    return root


def peak_bytes(model, root: Path, out: Path) -> int:
    "Peak numpy memory of one evaluation (no figures) of `root` into `out`."
    tracemalloc.start()
    evaluate(model, root, out, figures=False, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256], help="images in the class")
    p.add_argument("--image-size", type=int, default=224)
    a = p.parse_args()
    torch.set_num_threads(1)
    model = perturb_(KAnoCLIP(KAnoCLIPConfig.tiny(image_size=a.image_size)), std=0.05).eval()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        evaluate(model, maskless_class(d / "warm", 4), d / "warm_out", figures=False, progress=False)   # first-call allocations
        print(f"{'images':>7} {'maps (MB)':>10} {'peak (MB)':>10} {'peak / maps':>12}")
        for n in a.sizes:
            maps = n * a.image_size ** 2 * 4
            peak = peak_bytes(model, maskless_class(d / f"c{n}", n), d / f"out{n}")
            print(f"{n:>7} {maps / 2**20:>10.2f} {peak / 2**20:>10.2f} {peak / maps:>12.3f}")


if __name__ == "__main__":
    main()
