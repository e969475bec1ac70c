"""What the benchmarks share: timers, the options for models, batch, input size, repeats and threads, and the
peak-memory measurement in a fresh child process.

The scripts run as `python benchmarks/bench_x.py`, so this folder is on `sys.path` and `from common import ...` works."""
import argparse, ctypes, gc, json, os, re, statistics, subprocess, sys, time

from kanoclip.backbone import TINY_MODEL

MIB = 2**20


def timed(f) -> float:
    "Seconds one call of `f` takes."
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0


def best_time(f, *a, repeat: int = 1, **k):
    "Best wall time of `repeat` runs of f(*a, **k), and the last result."
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter(); out = f(*a, **k); best = min(best, time.perf_counter() - t)
    return best, out


def interleaved_medians(runs: dict, repeats: int, warmup: int = 2) -> dict:
    "Median seconds of each call of `runs` ({name: f}): `warmup` rounds first, then `repeats` rounds of each in turn."
    for _ in range(warmup):
        for f in runs.values(): f()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, f in runs.items(): times[k].append(timed(f))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    "A parser described by the first line of `doc`, with the options every model benchmark takes."
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[TINY_MODEL, "ViT-B-16"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 gives the most stable numbers)")
    return p


def build_model(name: str, size: int, cls: str | None = None):
    "A trained-looking KAnoCLIP (random CLIP, `perturb_`ed heads) in eval mode; with `cls`, its text cache filled for it."
    import torch
    from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
    cfg = KAnoCLIPConfig.tiny() if name == TINY_MODEL else KAnoCLIPConfig(backbone=name, pretrained=None, image_size=size)
    model = perturb_(KAnoCLIP(cfg)).eval()
    if cls is not None:
        with torch.inference_mode(): model.text_features([cls])
    return model


# Peak memory, measured in a fresh child process (see bench_model.py's docstring): the child settles the heap,
# resets the kernel's high-water mark and reads /proc/self/status around the measured call.

def status() -> dict:
    "This process's resident memory `VmRSS` and its high-water mark `VmHWM`, in bytes."
    s = open("/proc/self/status").read()
    return {k: int(re.search(rf"{k}:\s+(\d+) kB", s).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def settle():
    "Collect garbage and hand freed heap pages back to the system, so a measured call cannot hide in them."
    gc.collect()
    try: ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError): pass


def reset_hwm() -> bool:
    "Set `VmHWM` to `VmRSS` (Linux); False where /proc/self/clear_refs is not writable."
    try:
        with open("/proc/self/clear_refs", "w") as fh: fh.write("5")
        return True
    except OSError: return False


def run_child(script: str, args: list):
    "Run `script --child ARGS` in a fresh process, glibc's mmap threshold fixed at 128 KiB; the JSON of its last line."
    r = subprocess.run([sys.executable, script, "--child", *map(str, args)], capture_output=True, text=True, check=True,
                       env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    return json.loads(r.stdout.strip().splitlines()[-1])


def mib(b, digits: int = 1) -> str:
    "Bytes `b` in MiB with `digits` decimals; n/a for None."
    return "n/a" if b is None else f"{b / MIB:.{digits}f}"
