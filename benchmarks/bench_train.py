"""Training epoch time with the CLIP-VV feature cache against without it, side by side in one run (CPU, random weights).

    python benchmarks/bench_train.py [--models kanoclip-tiny ViT-B-16] [--classes 2] [--per-class 12]
                                     [--batch 8] [--size 224] [--repeats 3] [--threads 1]

A small generated dataset (`make_synthetic`: the first `--classes` training categories, `--per-class` test
images each, 256 px, a third of them normal) is written to a temporary folder. For each backbone, `train` runs
2 epochs with `cache="memory"` and 2 epochs with `cache="none"`, alternating, `repeats` times, each run in a
fresh output folder and with the same seed; the time of epoch 2 is read from the returned history (the
`seconds` of `log.jsonl`). With the cache, epoch 2 runs only the trainable heads (Bi-CMCI, prompts, adapter,
losses, optimiser) on stored features; without it, every batch is also read from disk and encoded by the frozen
CLIP-VV. The table shows the median epoch-2 time of each and the speed-up (none / cache); the cache fill (once,
before epoch 1, not in any epoch's time) and the checkpoint writes are shown beside it. Target: >= 5x at ViT-B-16. No asserts.
"""
import os, statistics, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from kanoclip.backbone import TINY_MODEL
from kanoclip.model import KAnoCLIPConfig
from kanoclip.synthetic import make_synthetic, SYNTH_TRAIN_CLASSES
from kanoclip.train import TrainConfig, train
from common import bench_parser


def run(name, size, data, out, cache, batch):
    mc = KAnoCLIPConfig.tiny() if name == TINY_MODEL else KAnoCLIPConfig(backbone=name, pretrained=None, image_size=size)
    tc = TrainConfig(epochs=2, batch_size=batch, cache=cache, device="cpu", seed=0)
    t0 = time.perf_counter()
    h = train(mc, tc, data, out, progress=False)
    epochs = [e["seconds"] for e in h["epochs"]]
    return dict(epoch2=epochs[1], epoch1=epochs[0], fill=h["seconds"] - sum(epochs), wall=time.perf_counter() - t0)


def bench(name, size, data, tmp, repeats, batch):
    res = {"memory": [], "none": []}
    for r in range(repeats):
        for cache in ("none", "memory"):   # alternate, so both see the same machine load
            res[cache].append(run(name, size, data, Path(tmp) / f"{name}-{cache}-{r}", cache, batch))
    return {c: {k: statistics.median(x[k] for x in v) for k in v[0]} for c, v in res.items()}


def main(argv=None):
    p = bench_parser(__doc__, repeats=3)
    p.add_argument("--classes", type=int, default=2, help="generated training categories")
    p.add_argument("--per-class", type=int, default=12, help="images per category (a third normal)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        n_normal = a.per_class // 3
        data = make_synthetic(Path(tmp) / "data", classes=SYNTH_TRAIN_CLASSES[:a.classes], n_train=1,
                              n_normal=n_normal, n_anomalous=a.per_class - n_normal, size=256)
        n = a.classes * a.per_class
        print(f"CPU, {a.threads} thread(s); {n} generated images ({a.classes} classes, 256 px) at {a.size} px, "
              f"batch {a.batch} ({-(-n // a.batch)} steps/epoch); median of {a.repeats} alternating runs; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"| {'model':14s} | {'epoch 2, no cache s':>19s} | {'epoch 2, cache s':>16s} | {'speed-up':>8s} | "
              f"{'fill+ckpt s':>12s} |")
        print(f"|{'-' * 16}|{'-' * 20}:|{'-' * 17}:|{'-' * 9}:|{'-' * 13}:|")
        for name in a.models:
            t = bench(name, a.size, data, tmp, a.repeats, a.batch)
            none, mem = t["none"]["epoch2"], t["memory"]["epoch2"]
            print(f"| {name:14s} | {none:19.2f} | {mem:16.2f} | {none / mem:7.1f}x | {t['memory']['fill']:12.2f} |",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
