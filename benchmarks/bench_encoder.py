"""CLIP-VV speed against open_clip's plain `encode_image`, side by side in one run (CPU, random weights).

    python benchmarks/bench_encoder.py [--models kanoclip-tiny ViT-B-16] [--batch 8] [--size 224]
                                       [--repeats 7] [--threads 1]

For each model, the plain encoder and CLIP-VV (default taps and vv_start, local path on; and with the local
path off) run interleaved -- warm-up first, then `repeats` rounds of each in turn -- and the table shows the
median time of each and its ratio to `encode_image`. The target is CLIP-VV <= 1.3x: the local path adds one
attention and one output projection per block but no MLP. No asserts: the numbers are for reading.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from kanoclip.backbone import load_clip
from kanoclip.clip_vv import CLIPVV
from common import bench_parser, interleaved_medians


def bench(name, batch, size, repeats, warmup=2):
    bb = load_clip(name, None, image_size=size)
    x = torch.randn(batch, 3, size, size)
    runs = {"encode_image": lambda: bb.model.encode_image(x),
            "CLIP-VV": CLIPVV(bb.model), "CLIP-VV, no local path": CLIPVV(bb.model, local_path=False)}
    runs = {k: (f if k == "encode_image" else (lambda e=f: e(x))) for k, f in runs.items()}
    with torch.inference_mode():   # encode_image without autograd bookkeeping, like CLIP-VV inside
        return interleaved_medians(runs, repeats, warmup)


def main(argv=None):
    p = bench_parser(__doc__, repeats=7)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"CPU, batch {a.batch}, {a.size} px, {a.threads} thread(s), median of {a.repeats} interleaved runs")
    print(f"| {'model':14s} | {'encode_image ms':>15s} | {'CLIP-VV ms':>10s} | {'VV / plain':>10s} | "
          f"{'no-local ms':>11s} | {'no-local / plain':>16s} |")
    print(f"|{'-' * 16}|{'-' * 16}:|{'-' * 11}:|{'-' * 11}:|{'-' * 12}:|{'-' * 17}:|")
    for name in a.models:
        t = bench(name, a.batch, a.size, a.repeats)
        base, vv, nl = t["encode_image"], t["CLIP-VV"], t["CLIP-VV, no local path"]
        print(f"| {name:14s} | {base * 1e3:15.1f} | {vv * 1e3:10.1f} | {vv / base:10.2f} | {nl * 1e3:11.1f} | "
              f"{nl / base:16.2f} |", flush=True)


if __name__ == "__main__":
    main()
