"""Few-shot memory banks: their memory, the cost they add to `predict`, and what they gain (AUROC over seeds).

    python benchmarks/bench_fewshot.py [--parts memory speed auroc] [--threads 1]
        memory: [--shots 1 4 16] [--budgets 64 8]
        speed:  [--models ViT-B-16] [--size 224] [--batch 8] [--speed-shots 4] [--repeats 7]
        auroc:  [--seeds 0 1 2] [--epochs 4]

memory -- a class's bank at the paper's setting (37 x 37 patches, 4 stages, 768-d features) for k = 1, 4, 16,
computed (k * 1369 * 4 * 768 * bytes per number) and measured, and the memory of one search (one test image,
all four stages, through `fewshot_map` with its upsampling and smoothing to 518 px) for each search budget.
The features are random unit vectors: neither the memory nor the search depends on their values, and a
ViT-L/14 at 518 px on a CPU would take minutes per image. Each figure comes from a fresh child process, as in
`bench_model.py`: glibc's mmap threshold is fixed at 128 KiB so freed tensors go back to the system, freed heap is
trimmed, the kernel's high-water mark is reset (`/proc/self/clear_refs`), and `bank` is the resident memory added
by building the bank (the features it came from freed), `search peak` the high-water mark of one `fewshot_map`
above the memory resident before it. The bound is what `search_chunks` allows one block of the search (the
output and the final map come on top). float32 on the CPU; float16/bfloat16 (what a GPU bank uses) take half,
measured here as bfloat16 storage; on a machine with CUDA the float16 bank and search are also measured with
`torch.cuda.max_memory_allocated`.

speed -- the cost a k-shot bank adds to `predict`, side by side: `model.predict(x, cls)` (zero-shot) and
`FewShotDetector.predict(x, cls)` (the same model and a bank of `--speed-shots` references) run interleaved,
warm-up first, then `repeats` rounds of each in turn; the table shows the medians per image and their ratio.
ViT-B-16 (or each of `--models`) with random CLIP weights (`pretrained=None`) and `perturb_` noise on the trained
parameters, CPU.
Target: ratio <= 1.25 at k = 4.

auroc -- image and pixel AUROC for k = 0, 1, 2, 4 over `--seeds` on generated data: the four unseen categories
(2 textures, 2 objects), 8 normal training images each to draw references from, 10 normal and 10 anomalous test
images; the tiny backbone, untrained (prompts and heads at their random start, drawn with the seed) and briefly
trained (`--epochs` on the four training categories of the same seed, as the demo does). A seed fixes the generated
data, the untrained model, the training and the draw of the references. The
table gives, per group of categories and k, the mean over the categories, then mean ± standard deviation over
the seeds, of the fused detector (w = 0.5) and of the few-shot map alone (w = 1). No asserts: the numbers are
for reading.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from kanoclip.clip_vv import VVOutput
from kanoclip.fewshot import (FewShotDetector, bank_from_features, build_bank, compare_shots, fewshot_map,
                              search_chunks, shots_table)
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig
from common import MIB, bench_parser, build_model, interleaved_medians, mib, reset_hwm, run_child, settle, status

GRID, STAGES, DIM, PAPER_SIZE = (37, 37), 4, 768, 518


def random_feats(b: int, device="cpu", seed: int = 0) -> VVOutput:
    "CLIP-VV-shaped features of `b` images at the paper's setting (random)."
    g = torch.Generator(device).manual_seed(seed)
    hw = GRID[0] * GRID[1]
    return VVOutput(torch.randn(b, DIM, generator=g, device=device),
                    [torch.randn(b, hw, DIM, generator=g, device=device) for _ in range(STAGES)], GRID)


def memory_child(shots: int, dtype: str, budget_mb: float):
    "In a fresh process: resident memory of a bank and peak memory of one search (see the docstring). Prints JSON."
    torch.set_num_threads(1)
    test = random_feats(1, seed=1)
    fewshot_map(test, bank_from_features(random_feats(1, seed=2), ["w"], dtype=torch.float32), PAPER_SIZE)  # warm-up
    settle()
    before = status()["VmRSS"]
    feats = random_feats(shots)
    bank = bank_from_features(feats, [f"r{i}" for i in range(shots)], dtype=getattr(torch, dtype))
    del feats; settle()
    bank_rss = status()["VmRSS"] - before
    out = dict(bank_nbytes=bank.nbytes, bank_rss=bank_rss, search_peak=None)
    if dtype == "float32":
        ok = reset_hwm(); start = status()["VmRSS"]
        fewshot_map(test, bank, PAPER_SIZE, budget=int(budget_mb * MIB))
        out["search_peak"] = status()["VmHWM"] - start if ok else None
    print(json.dumps(out))


def cuda_memory(shots: int, budget_mb: float) -> dict:
    "float16 bank and one search on CUDA, from the allocator's counters."
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    test = random_feats(1, "cuda", seed=1)
    feats = random_feats(shots, "cuda")
    bank = bank_from_features(feats, [f"r{i}" for i in range(shots)])
    del feats; torch.cuda.synchronize()
    held = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fewshot_map(test, bank, PAPER_SIZE, budget=int(budget_mb * MIB)); torch.cuda.synchronize()
    return dict(bank=held - base - sum(t.numel() * 4 for t in [test.global_feat, *test.patches]),
                search_peak=torch.cuda.max_memory_allocated() - held)


def bench_memory(a):
    hw = GRID[0] * GRID[1]
    print(f"\n## Memory of a class's bank and of one search: {GRID[0]} x {GRID[1]} patches, {STAGES} stages, {DIM}-d, "
          f"test image {PAPER_SIZE} px (MiB)\n")
    print("| k | bank float16 computed | bank bfloat16 measured | bank float32 computed | bank float32 measured | "
          "search budget | block bound float32 | search peak float32 measured |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for k in a.shots:
        half, full = run_child(__file__, [k, "bfloat16", a.budgets[0]]), None
        for i, budget in enumerate(a.budgets):
            full = run_child(__file__, [k, "float32", budget])
            mq, nb = search_chunks(hw, k * hw, DIM, 4, int(budget * MIB))
            bound = mq * (nb * 4 + 8 * DIM + 4)
            lead = (f"| {k} | {mib(k * hw * STAGES * DIM * 2)} | {mib(half['bank_rss'])} | {mib(k * hw * STAGES * DIM * 4)} | "
                    f"{mib(full['bank_rss'])} |") if i == 0 else "| | | | | |"
            print(f"{lead} {budget:g} | {mib(bound)} ({mq} x {nb}) | {mib(full['search_peak'])} |", flush=True)
    if torch.cuda.is_available():
        print("\nCUDA, float16 (MiB): | k | bank | search peak (budget %g MiB) |" % a.budgets[0])
        for k in a.shots:
            m = cuda_memory(k, a.budgets[0])
            print(f"| {k} | {mib(m['bank'])} | {mib(m['search_peak'])} |")


def bench_speed(a):
    for name in a.models: speed(a, name)


def speed(a, name: str):
    cls = "bottle"
    model = build_model(name, a.size)
    g = torch.Generator().manual_seed(0)
    refs = torch.randn(a.speed_shots, 3, a.size, a.size, generator=g)
    with torch.inference_mode(): bank = build_bank(model, refs, [f"r{i}" for i in range(a.speed_shots)])
    det = FewShotDetector(model, {cls: bank})
    x = torch.randn(a.batch, 3, a.size, a.size, generator=g)
    runs = {"zero-shot predict": lambda: model.predict(x, cls), f"{a.speed_shots}-shot predict": lambda: det.predict(x, cls)}
    zs, fs = (t / a.batch for t in interleaved_medians(runs, a.repeats).values())
    print(f"\n## Added cost per test image: {name} at {a.size} px, random weights, CPU, {a.threads} thread(s), batch "
          f"{a.batch}, bank of {a.speed_shots} shots ({bank.nbytes / MIB:.1f} MiB), median of {a.repeats} interleaved runs\n")
    print(f"| zero-shot predict ms/img | {a.speed_shots}-shot predict ms/img | added ms/img | ratio (target <= 1.25) |")
    print("|--:|--:|--:|--:|")
    print(f"| {zs * 1e3:.1f} | {fs * 1e3:.1f} | {(fs - zs) * 1e3:.1f} | {fs / zs:.3f} |", flush=True)


def bench_auroc(a):
    from kanoclip.synthetic import SYNTH_TEST_CLASSES, SYNTH_TRAIN_CLASSES, SYNTH_TEXTURES, SYNTH_OBJECTS, make_synthetic
    from kanoclip.train import TrainConfig, train
    groups = {"all": list(SYNTH_TEST_CLASSES), "textures": [c for c in SYNTH_TEST_CLASSES if c in SYNTH_TEXTURES],
              "objects": [c for c in SYNTH_TEST_CLASSES if c in SYNTH_OBJECTS]}
    rows = {"untrained": [], f"trained {a.epochs} epochs": []}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for seed in a.seeds:
            test_root = make_synthetic(d / f"test{seed}", SYNTH_TEST_CLASSES, n_train=8, n_normal=10, n_anomalous=10, size=224, seed=seed)
            train_root = make_synthetic(d / f"train{seed}", SYNTH_TRAIN_CLASSES, seed=seed)
            train(KAnoCLIPConfig.tiny(), TrainConfig(epochs=a.epochs, batch_size=8, seed=seed, device="cpu", cache="memory"),
                  [train_root], d / f"run{seed}", progress=False)
            torch.manual_seed(seed)                   # the untrained model's prompts and heads
            for name, model in zip(rows, (KAnoCLIP(KAnoCLIPConfig.tiny()), KAnoCLIP.from_checkpoint(d / f"run{seed}"))):
                rows[name] += compare_shots(model, test_root, shots=(0, 1, 2, 4), seed=seed)
            print(f"seed {seed} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"\n## AUROC (%) on generated data, tiny backbone, seeds {a.seeds}: mean over categories, mean ± std over seeds; "
          "fused w = 0.5, and the few-shot map alone (w = 1)")
    for name, r in rows.items():
        print(f"\n### {name}\n\n{shots_table(r, groups)}")
    print(f"\n{time.time() - t0:.0f} s")


def main(argv=None):
    p = bench_parser(__doc__, repeats=7)                  # --models (speed: ViT-B-16), --batch, --size, --repeats, --threads
    p.set_defaults(models=["ViT-B-16"])
    p.add_argument("--parts", nargs="+", default=["memory", "speed", "auroc"], choices=["memory", "speed", "auroc"])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--budgets", type=float, nargs="+", default=[64, 8], help="search budgets in MiB (the first is the default)")
    p.add_argument("--speed-shots", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2]); p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return memory_child(int(a.child[0]), a.child[1], float(a.child[2]))
    torch.set_num_threads(a.threads)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for part in a.parts: globals()[f"bench_{part}"](a)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
