"""One GPU check of the real path: CLIP ViT-L/14@336 at 518 px with random weights (no downloads), one table.

    python benchmarks/bench_gpu.py                # on one CUDA GPU; budget: 5 minutes
    python benchmarks/bench_gpu.py --smoke        # the same code on the CPU with the tiny backbone, in seconds

Four parts, each a group of rows in the table; the script exits with status 1 if any check fails.

1. predict: images/s of `KAnoCLIP.predict` on batches already on the device (the model alone), at batch 16
   and 32, in fp32 and in bf16 (`amp=True`); then bf16 against fp32 on generated images: the largest
   difference of the anomaly maps (check: <= 0.02) and the Spearman correlation of the image scores (check:
   >= 0.98; the spread of the scores is shown beside it, since an untrained model scores images closely).
   The model has random CLIP weights and `perturb_` noise on its heads, so nothing short-cuts.
2. train: `train()` itself for 50 steps (batch 8, 2 epochs of 200 generated images, feature cache in
   memory), once with `amp` and `compile` off and once with both on. Every step is timed (`train_step` is
   wrapped; the device is synchronised around it): steps/s is 1 / the median step after the first 5, the
   first step (which compiles) is shown apart, and the peak GPU memory is `torch.cuda.max_memory_allocated`.
   Checks: every loss finite, and the total loss of the two runs within 5 % of each other at every step.
3. evaluate: `evaluate()` (what `kanoclip test` runs) on 500 generated images of VisA's size, 1500 x 1000
   JPEGs with PNG masks, in bf16 at batch 16. First the loader alone (decode, resize to 518, normalise) for
   0, 4, 8 and 16 worker processes, against the model alone (part 1, bf16, batch 16): the fewest workers whose
   loader outruns the model keep the GPU fed. Then the whole evaluation (metrics included) with that many
   workers, images/s end to end. Check: finite metrics.
4. metrics: the metrics of `kanoclip test` (`class_metrics`) on 2,162 maps of 518 x 518 (VisA's test set) given
   as GPU tensors, in 12 classes as the evaluation computes them. Check: every metric finite, in [0, 1].

fp32 means true fp32 (TF32 matrix products stay off, PyTorch's default). With `--smoke` the same functions run on
the CPU with the tiny random backbone at 112 px and small sizes everywhere; `torch.compile` then uses the
`eager` backend (graph capture without inductor's C++ build, which takes minutes on a CPU) and bf16 is CPU
autocast. The test suite runs `--smoke` so the script never rots.
"""
import argparse, math, os, shutil, statistics, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from PIL import Image
from scipy.stats import spearmanr
from torch.utils.data import DataLoader

import kanoclip.train
from kanoclip.backbone import DEFAULT_BACKBONE
from kanoclip.bicmci import gaussian_blur
from kanoclip.data import AnomalyDataset, load_meta, write_meta
from kanoclip.evaluate import class_metrics, evaluate
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.synthetic import make_synthetic
from kanoclip.train import TrainConfig, train

MAP_TOL, SPEARMAN_MIN, LOSS_RTOL = 0.02, 0.98, 0.05


@dataclass
class Setting:
    "Sizes of one run of the benchmark."
    device: str               # where the model runs
    smoke: bool               # the tiny backbone instead of ViT-L/14@336
    size: int                 # model input size in pixels
    batches: tuple            # predict batch sizes
    agree_images: int         # generated images for the bf16/fp32 agreement
    train_images: int         # generated training images (steps = epochs * train_images / train_batch)
    train_batch: int
    epochs: int
    eval_images: int          # generated evaluation images ...
    eval_wh: tuple            # ... of this (width, height)
    workers: tuple            # loader worker counts tried
    metric_maps: int          # maps for the metrics part ...
    metric_classes: int       # ... in this many classes
    compile_backend: str      # torch.compile backend of the compile=on run

    def model_config(self) -> KAnoCLIPConfig:
        if self.smoke: return KAnoCLIPConfig.tiny(image_size=self.size)
        return KAnoCLIPConfig(backbone=DEFAULT_BACKBONE, pretrained=None, image_size=self.size)


FULL = Setting("cuda", False, 518, (16, 32), 64, 200, 8, 2, 500, (1500, 1000), (0, 4, 8, 16), 2162, 12, "inductor")
SMOKE = Setting("cpu", True, 112, (2, 4), 8, 12, 4, 2, 12, (150, 100), (0, 2), 24, 3, "eager")


class Table:
    "Rows of (part, measurement, value, check); `failed` is True once a check fails."
    def __init__(self): self.rows, self.failed = [], False
    def add(self, part, what, value, check=None, ok=None):
        self.rows.append((part, what, value, "" if check is None else f"{check}: {'ok' if ok else 'FAIL'}"))
        self.failed |= ok is False
    def show(self, title):
        head = ("part", "measurement", "value", "check")
        w = [max(len(str(r[i])) for r in [head] + self.rows) for i in range(4)]
        line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
        print(f"\n{title}\n" + "\n".join([line(head), "| " + " | ".join("-" * n for n in w) + " |"] + [line(r) for r in self.rows]))


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize(dev)


def median_time(fn, dev, repeats: int = 5, warmup: int = 2) -> float:
    "Median seconds of `fn()` after `warmup` calls, the device synchronised around each call."
    for _ in range(warmup): fn()
    times = []
    for _ in range(repeats):
        sync(dev); t = time.perf_counter(); fn(); sync(dev); times.append(time.perf_counter() - t)
    return statistics.median(times)


def trained_looking(s: Setting, dev) -> KAnoCLIP:
    "Random CLIP weights, heads moved off their zero start (so Bi-CMCI and the adapter do work)."
    return perturb_(KAnoCLIP(s.model_config()), std=0.05, seed=0).to(dev).eval()


# --- 1. predict ----------------------------------------------------------------------------------------------

def part_predict(s: Setting, dev, model: KAnoCLIP, data: Path, t: Table) -> dict:
    rates = {}
    for b in s.batches:
        x = torch.randn(b, 3, s.size, s.size, device=dev)
        for amp in (False, True):
            rates[b, amp] = b / median_time(lambda: model.predict(x, "object", amp=amp), dev)
            t.add("predict", f"batch {b}, {'bf16' if amp else 'fp32'}: images/s (model only)", f"{rates[b, amp]:.1f}")
        t.add("predict", f"batch {b}: bf16 speed-up over fp32", f"x{rates[b, True] / rates[b, False]:.2f}")
    bb = model.backbone
    ds = AnomalyDataset(data, image_size=s.size, mean=bb.mean, std=bb.std)
    scores, maps = {}, {}
    for amp in (False, True):
        out = [model.predict(b["image"].to(dev), b["cls_name"], amp=amp)
               for b in DataLoader(ds, batch_size=s.batches[0])]
        scores[amp], maps[amp] = (torch.cat([o[i].float().cpu() for o in out]) for i in (0, 1))
    diff = (maps[True] - maps[False]).abs().max().item()
    rho = spearmanr(scores[True].numpy(), scores[False].numpy()).statistic
    t.add("predict", f"bf16 vs fp32, {len(ds)} images: largest map difference", f"{diff:.4f}", f"<= {MAP_TOL}", diff <= MAP_TOL)
    t.add("predict", f"bf16 vs fp32: Spearman of image scores (score std {scores[False].std():.4f})", f"{rho:.4f}",
          f">= {SPEARMAN_MIN}", bool(rho >= SPEARMAN_MIN))
    return rates


def progress(part: str, t0: float): print(f"{part} done, {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def free(dev):
    if dev.type == "cuda": torch.cuda.empty_cache()


# --- 2. train ------------------------------------------------------------------------------------------------

def timed_steps(record: list):
    "`train_step` that appends (seconds, losses) of every step to `record`, the device synchronised around it."
    inner = kanoclip.train.train_step
    def step(model, opt, feats, masks, *a, **k):
        sync(masks.device); t0 = time.perf_counter()
        losses = inner(model, opt, feats, masks, *a, **k)
        sync(masks.device); record.append((time.perf_counter() - t0, losses))
        return losses
    return step


def part_train(s: Setting, dev, data: Path, tmp: Path, t: Table):
    runs, inner = {}, kanoclip.train.train_step
    for on in (False, True):
        rec, flag = [], "on" if on else "off"
        tc = TrainConfig(epochs=s.epochs, batch_size=s.train_batch, seed=0, device=str(dev), amp=flag, compile=flag,
                         cache="memory", num_workers=min(8, os.cpu_count() or 1))
        if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(dev)
        kanoclip.train.train_step = timed_steps(rec)
        try: train(s.model_config(), tc, [data], tmp / f"run_{flag}", progress=False)
        finally: kanoclip.train.train_step = inner
        peak = f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB" if dev.type == "cuda" else "n/a (CPU)"
        runs[on] = rec
        name = "amp + compile " + flag
        t.add("train", f"{name}: steps/s after 5 steps ({len(rec)} steps)", f"{1 / statistics.median(x for x, _ in rec[5:]):.2f}")
        t.add("train", f"{name}: first step (compiles when on), s", f"{rec[0][0]:.2f}")
        t.add("train", f"{name}: peak GPU memory", peak)
        finite = all(math.isfinite(v) for _, l in rec for v in l.values())
        t.add("train", f"{name}: every loss finite", "yes" if finite else "no", "finite", finite)
        free(dev)
    rel = max(abs(a["total"] - b["total"]) / abs(b["total"]) for (_, a), (_, b) in zip(runs[True], runs[False]))
    same = len(runs[True]) == len(runs[False]) and rel <= LOSS_RTOL
    t.add("train", "total loss, on vs off: largest relative difference over the steps", f"{rel:.4f}", f"<= {LOSS_RTOL}", same)


# --- 3. evaluate ---------------------------------------------------------------------------------------------

def visa_sized(s: Setting, tmp: Path) -> Path:
    "`eval_images` JPEGs of `eval_wh` (generated images scaled up) with PNG masks, one class, indexed by meta.json."
    base = make_synthetic(tmp / "base", classes=["ring", "gridded"], n_train=0, n_normal=4, n_anomalous=6, size=256)
    samples = [x for v in load_meta(base)["test"].values() for x in v]
    root = tmp / "visa_sized"; (root / "img").mkdir(parents=True); (root / "mask").mkdir()
    def write(i):
        x = samples[i % len(samples)]
        Image.open(base / x["img_path"]).convert("RGB").resize(s.eval_wh, Image.BICUBIC).save(root / "img" / f"{i:04}.jpg", quality=90)
        out = dict(img_path=f"img/{i:04}.jpg", mask_path="", cls_name="part", specie_name=x["specie_name"], anomaly=x["anomaly"])
        if x["mask_path"]:
            Image.open(base / x["mask_path"]).resize(s.eval_wh, Image.NEAREST).save(root / "mask" / f"{i:04}.png")
            out["mask_path"] = f"mask/{i:04}.png"
        return out
    with ThreadPoolExecutor(os.cpu_count()) as pool: test = list(pool.map(write, range(s.eval_images)))
    write_meta({"train": {}, "test": {"part": test}}, root)
    return root


def part_evaluate(s: Setting, dev, model: KAnoCLIP, tmp: Path, model_rate: float, t: Table) -> int | None:
    "Loader rates per worker count, then evaluate() with the fewest workers that keep up; returns that count."
    root, batch, bb = visa_sized(s, tmp), s.batches[0], model.backbone
    ds = AnomalyDataset(root, image_size=s.size, mean=bb.mean, std=bb.std)
    fed = None
    for w in s.workers:
        t0 = time.perf_counter()
        for _ in DataLoader(ds, batch_size=batch, num_workers=w, pin_memory=dev.type == "cuda"): pass
        rate = len(ds) / (time.perf_counter() - t0)
        t.add("evaluate", f"loader alone, {w} workers: images/s ({s.eval_wh[0]} x {s.eval_wh[1]} JPEG -> {s.size})", f"{rate:.1f}")
        if fed is None and rate >= model_rate: fed = w
    t.add("evaluate", f"fewest workers whose loader outruns the model ({model_rate:.1f} images/s, bf16)",
          "none tried" if fed is None else str(fed))
    w = s.workers[-1] if fed is None else fed
    t0 = time.perf_counter()
    m = evaluate(model, root, tmp / "eval", batch_size=batch, device=dev, figures=False, progress=False, num_workers=w, amp=True)
    rate = len(ds) / (time.perf_counter() - t0)
    ok = all(v is None or math.isfinite(v) for v in m["mean"].values())
    t.add("evaluate", f"evaluate() end to end, bf16, {w} workers: images/s (metrics included)", f"{rate:.1f}", "finite", ok)
    return fed


# --- 4. metrics ----------------------------------------------------------------------------------------------

def part_metrics(s: Setting, dev, t: Table):
    g = torch.Generator(device=dev).manual_seed(0)
    sizes = [len(c) for c in np.array_split(np.arange(s.metric_maps), s.metric_classes)]
    t0, ok = time.perf_counter(), True
    for n in sizes:
        masks = torch.zeros(n, s.size, s.size, device=dev)
        labels = torch.arange(n, device=dev) % 3 == 0                  # a third anomalous, each with a square defect
        for i in labels.nonzero().flatten().tolist():
            y, x = (torch.randint(0, s.size * 3 // 4, (2,), generator=g, device=dev)).tolist()
            masks[i, y:y + s.size // 8, x:x + s.size // 8] = 1
        maps = gaussian_blur(0.5 * torch.rand(n, s.size, s.size, generator=g, device=dev) + 0.5 * masks, sigma=4)
        scores = maps.flatten(1).amax(1)
        res = class_metrics(scores.cpu().numpy(), labels.cpu().numpy(), maps, masks.bool())
        ok &= all(v is not None and math.isfinite(v) and 0 <= v <= 1 for v in res.values())
    secs = time.perf_counter() - t0
    t.add("metrics", f"class_metrics of {s.metric_maps} maps of {s.size} x {s.size} on {dev.type} tensors, "
          f"{s.metric_classes} classes: s", f"{secs:.2f}", "finite, in [0, 1]", ok)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="the same code on the CPU with the tiny backbone, in seconds")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    a = p.parse_args(argv)
    s = SMOKE if a.smoke else FULL
    dev = torch.device(a.device or s.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; run with --smoke for the CPU version", file=sys.stderr); return 2
    if s.compile_backend != "inductor":                                # train() calls torch.compile(...) itself
        compile_ = torch.compile
        torch.compile = lambda fn, **kw: compile_(fn, backend=s.compile_backend, **kw)
    torch.manual_seed(0)
    t, t0, tmp = Table(), time.perf_counter(), Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    try:
        data = make_synthetic(tmp / "train", classes=["plate", "woven"], n_train=0, n_normal=s.train_images // 4,
                              n_anomalous=s.train_images // 4, size=128)
        agree = make_synthetic(tmp / "agree", classes=["disc", "grained"], n_train=0, n_normal=s.agree_images // 4,
                               n_anomalous=s.agree_images // 4, size=128, seed=1)
        model = trained_looking(s, dev)
        rates = part_predict(s, dev, model, agree, t); progress("predict", t0)
        model.cpu(); free(dev)                                         # out of the way of train()'s peak memory
        part_train(s, dev, data, tmp, t); progress("train", t0)
        fed = part_evaluate(s, dev, model.to(dev), tmp, rates[s.batches[0], True], t); progress("evaluate", t0)
        part_metrics(s, dev, t)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    t.show(f"bench_gpu{' --smoke' if a.smoke else ''}: {s.model_config().backbone} at {s.size} px, random weights, "
           f"on {name}, torch {torch.__version__}; {time.perf_counter() - t0:.0f} s")
    b = s.batches[-1]
    print(f"bf16 predicts x{rates[b, True] / rates[b, False]:.2f} as fast as fp32 at batch {b}; "
          f"{'no tried number of' if fed is None else fed} loader workers keep the model fed at {s.eval_wh[0]} x {s.eval_wh[1]} px")
    print("FAILED: see the check column" if t.failed else "all checks passed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
