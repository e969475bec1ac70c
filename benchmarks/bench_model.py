"""`KAnoCLIP.predict` against the plain CLIP-VV encoder it runs first, side by side in one run (CPU, random weights).

    python benchmarks/bench_model.py [--models kanoclip-tiny ViT-B-16] [--batch 8] [--size 224]
                                     [--repeats 7] [--threads 1] [--no-memory]

For each backbone the model is built with random CLIP weights and `perturb_` noise on every trained parameter
(a trained-looking model: the zero-initialised output projections of Bi-CMCI and the Conv-Adapter no longer
short-cut anything), put in eval mode, and the same class is predicted twice before timing, so the text
features come from the per-class cache as in real inference. Then `model.encode(images)` (CLIP-VV under
`torch.inference_mode`) and `model.predict(images, cls)` (CLIP-VV + prompts from the cache + Bi-CMCI + adapter +
fusion) run interleaved -- warm-up first, then `repeats` rounds of each in turn -- and the table shows the median
time of each, their ratio, and what the heads add on top of the encoder. Target: the heads add <= 30% at
ViT-B-16. No asserts: the numbers are for reading.

Peak memory: tracemalloc does not see torch's allocations, and a high-water mark read in the timing process
would be that of its biggest earlier call. So each memory figure comes from a fresh child process
(`--child`) that builds the same model, fills the text cache, returns freed heap memory to the system
(`malloc_trim`), resets the kernel's resident-set high-water mark (`echo 5 > /proc/self/clear_refs`, Linux) and
runs the measured call once. The child runs with glibc's mmap threshold fixed at 128 KiB
(`MALLOC_MMAP_THRESHOLD_`), so every large tensor gets its own mapping that goes back to the system when it is
freed: resident memory then follows live memory, and the figures repeat to within 1 MiB (with the default,
adaptive threshold, freed memory lingers in the heap and the same measurement varies by tens of MiB).
`peak extra` is `VmHWM` after the call minus `VmRSS` before it: the most memory the call itself held at any
moment (activations and temporaries), above the model and inputs already resident; `predict` includes the
encoder, so its figure is the larger of the encoder's peak and the heads' peak on top of the features. `peak
total` is the process's `VmHWM` (Python, torch, CLIP weights and all). Where `/proc/self/clear_refs` is not
writable the memory columns say n/a.
"""
import argparse, json, os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from common import bench_parser, build_model, interleaved_medians, mib, reset_hwm, run_child, settle, status

CLASS = "bottle"


def build(name, size):
    "A trained-looking KAnoCLIP (random CLIP, perturbed heads) in eval mode, and its text cache filled for CLASS."
    return build_model(name, size, CLASS)


def runs(model, x):
    def encode():
        with torch.inference_mode(): return model.encode(x)
    return {"CLIP-VV": encode, "predict": lambda: model.predict(x, CLASS)}


def bench_time(model, x, repeats, warmup=2):
    model.predict(x, CLASS); model.predict(x, CLASS)     # same class twice: text features from the cache
    return interleaved_medians(runs(model, x), repeats, warmup)


def child(name, size, batch, which, threads):
    "In a fresh process: peak memory of one `which` call (see the module docstring). Prints JSON."
    torch.set_num_threads(threads)
    model = build(name, size)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    f = runs(model, x)[which]
    settle()                                       # hand freed heap pages back, so the call cannot hide in them
    if not reset_hwm():                            # VmHWM := VmRSS
        print(json.dumps(None)); return
    before = status()["VmRSS"]
    f()
    after = status()
    print(json.dumps(dict(extra=after["VmHWM"] - before, total=after["VmHWM"])))


def bench_memory(name, size, batch, threads) -> dict:
    return {which: run_child(__file__, [which, "--models", name, "--size", size, "--batch", batch, "--threads", threads])
            for which in ("CLIP-VV", "predict")}


def main(argv=None):
    p = bench_parser(__doc__, repeats=7)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--child", choices=["CLIP-VV", "predict"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return child(a.models[0], a.size, a.batch, a.child, a.threads)
    torch.set_num_threads(a.threads)
    print(f"CPU, batch {a.batch}, {a.size} px, {a.threads} thread(s), median of {a.repeats} interleaved runs, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"| {'model':14s} | {'CLIP-VV ms':>10s} | {'predict ms':>10s} | {'predict / VV':>12s} | {'heads add':>9s} | "
          f"{'VV peak extra MiB':>17s} | {'predict peak extra MiB':>22s} | {'VV / predict peak total MiB':>27s} |")
    print(f"|{'-' * 16}|{'-' * 11}:|{'-' * 11}:|{'-' * 13}:|{'-' * 10}:|{'-' * 18}:|{'-' * 23}:|{'-' * 28}:|")
    for name in a.models:
        model = build(name, a.size)
        x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
        t = bench_time(model, x, a.repeats)
        del model
        mem = {"CLIP-VV": None, "predict": None} if a.no_memory else bench_memory(name, a.size, a.batch, a.threads)
        vv, pr = t["CLIP-VV"], t["predict"]
        ex = {k: v and v["extra"] for k, v in mem.items()}
        tot = {k: v and v["total"] for k, v in mem.items()}
        print(f"| {name:14s} | {vv * 1e3:10.1f} | {pr * 1e3:10.1f} | {pr / vv:12.2f} | {pr / vv - 1:9.0%} | "
              f"{mib(ex['CLIP-VV'], 0):>17s} | {mib(ex['predict'], 0):>22s} | "
              f"{mib(tot['CLIP-VV'], 0) + ' / ' + mib(tot['predict'], 0):>27s} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
