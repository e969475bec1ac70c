"""What the model benchmarks share: the timer, and the options for models, batch, input size, repeats and threads.

The scripts run as `python benchmarks/bench_x.py`, so this folder is on `sys.path` and `from common import ...` works."""
import argparse, time

from kanoclip.backbone import TINY_MODEL


def timed(f) -> float:
    "Seconds one call of `f` takes."
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0


def bench_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    "A parser described by the first line of `doc`, with the options every model benchmark takes."
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[TINY_MODEL, "ViT-B-16"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 gives the most stable numbers)")
    return p
