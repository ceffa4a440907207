"""reglab's training and evaluation loops against the idiomatic PyTorch loop and the machine's limit.

    python benchmarks/throughput.py [--models alexnet_like resnet18 instrunet] [--batches 32 128]
                                    [--repeats 3] [--workers 2] [--bf16] [--compile] [--defaults] [--before] [--profile TOP] [--json PATH]
                                    [--set KEY=VALUE ...]

For each model (``alexnet_like`` and ``resnet18`` at width 0.25 on the typeface set, 64x64 RGB;
``instrunet`` on the instrument clips' cached log-mel features), augmentation off and on, and each
batch size: whole training epochs of reglab's loop (tensors in memory, batch-wise augmentation,
``training.epoch.run_epoch``) and of an idiomatic loop written out here (a ``Dataset`` of PIL images or
numpy features with per-sample transforms, ``DataLoader(num_workers=--workers)``), with the same
model, AdamW, loss, batch size and threads, alternated after a warm-up epoch each; the median of
``--repeats`` epochs. Then evaluation (no gradients) over the same data: reglab's
``predict_logits`` at its evaluation batch and the idiomatic ``no_grad`` loop over a DataLoader.

Also measured in the same process: the dense matmul rate (2048² fp32 and, where the CPU or GPU has
it, bf16), each model's FLOPs per sample (forward + backward, ``torch.utils.flop_counter``), and
the share of the fp32 rate reglab's training step reaches. The process starts as every ``reglab``
command does (``allocator.keep_freed_memory``), so both loops get the same allocator.

``--bf16``: reglab's loop also under bfloat16 autocast (``train.amp: bf16``), in the same rounds,
so that both precisions meet the same machine; the idiomatic loop stays in float32 as such loops
are written, and bf16's share of the fp32 rate can pass 100 %.

``--compile``: reglab's loop also under ``train.compile`` (``torch.compile``), in each precision,
in the same rounds; the compile column is the warm-up epoch's extra time (the first compile of a
shape; inductor caches its kernels on disk, so a later process compiles faster). Evaluation runs the
model uncompiled, as validation does.

``--defaults``: reglab's loop also as its defaults take it (``train.amp: auto``, ``train.compile:
auto``) for a run of the model's example recipe (``EXAMPLES``: the length of that run decides whether
compiling pays), in the same rounds; the row names what they resolved to.

``--memory``: each loop's peak resident memory, in MiB, beside its time: every configuration and
loop (each precision of reglab's, the idiomatic one with its DataLoader workers) trains two epochs
alone in a fresh process of this script (Linux): the largest resident set from the loop's start
(``VmHWM`` after ``/proc/self/clear_refs``, so the data's decoding does not count; the data, model
and optimizer in memory do) or of a reaped worker (``ru_maxrss``); the timed rounds stay side by
side in this process. On CUDA the columns are always there and hold the GPU's peak allocated memory
(``torch.cuda.max_memory_allocated``) over each loop's timed epochs, measured in the same process.

``--before``: reglab as it was before issue 16's changes, for the before/after table: glibc's
default allocation (freed memory returned to the kernel), torch's ``nn.LocalResponseNorm`` and
evaluation under ``no_grad`` at the evaluation batch of 512 (the idiomatic loop is the same in both);
also torch's batch norm (reglab's few-channel path came with issue 33).

The idiomatic loop trains the same model with torch's own ``nn.BatchNorm2d`` forward, as a model
written without reglab would.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from reglab import data as sources
from reglab.allocator import keep_freed_memory
from reglab.augment import BatchOps, EpochPlanner
from reglab.data.dataset import Samples
from reglab.device import autocast, compiled, concrete_amp, concrete_compile, cpu_has_bf16, pick_device
from reglab.inference.predictor import predict_logits, targets_for
from reglab.training.losses import create_loss
from reglab.models import create_model
from reglab.models.batchnorm import BatchNorm2d
from reglab.models.folding import folded
from reglab.training.optim import Optimizer
from reglab.progress import Silent
from reglab.recipe import NoScheduleConfig, load_base_recipe, load_recipe
from reglab.training.schedules import Schedule
from reglab.training.epoch import Member, one_run, run_epoch
from reglab.training.learner import Learner

ROOT = Path(__file__).resolve().parents[1]
IMAGE_RECIPE = [
    "data.source=image_folder", f"data.path={ROOT.parent / 'shared/data/typefaces/train'}", "data.image_size=64",
    "loss.name=cross_entropy", "optim={name: adamw, lr: 1.0e-3, weight_decay: 1.0e-4}",
]  # fmt: skip
IMAGE_AUGMENT = "augment={hflip: 0.5, resized_crop: {scale: [0.5, 1.0]}, color_jitter: {brightness: 0.3, contrast: 0.3, saturation: 0.3}}"
AUDIO_AUGMENT = ("augment={mixtures: {p: 0.7, max_sources: 4, gain_db: 6.0}, random_gain_db: 6.0, time_shift: 0.2, "
                 "specaugment: {freq_masks: 2, freq_width: 12, time_masks: 2, time_width: 20}}")  # fmt: skip
MODELS = {  # recipe file, overrides, augmentation when on (the idiomatic Datasets below do the same per sample)
    "alexnet_like": (None, IMAGE_RECIPE + ["model={name: alexnet_like, width: 0.25, lrn: true}"], IMAGE_AUGMENT),
    "resnet18": (None, IMAGE_RECIPE + ["model={name: resnet18, width: 0.25, stem: small}"], IMAGE_AUGMENT),
    "instrunet": (ROOT / "examples" / "instrunet.yaml", ["model.width=0.25", "optim={name: adamw, lr: 1.0e-3, weight_decay: 1.0e-4}"], AUDIO_AUGMENT),
}
EXAMPLES = {"alexnet_like": "ablation.yaml", "resnet18": "longtail.yaml", "instrunet": "instrunet.yaml"}  # whose run --defaults resolves for


def example_samples(name: str, data) -> int:
    """Training samples a run of the model's example recipe sees (epochs x visits an epoch), were its
    training split the benchmark's data less the recipe's validation fraction."""
    recipe = load_base_recipe(ROOT / "examples" / EXAMPLES[name])  # a study's: its base, which its baseline arm trains
    planner = EpochPlanner(data.class_counts(), recipe.train.balanced_sampling, recipe.train.repeats, recipe.augment.multicrop)
    return int(recipe.train.epochs * planner.visits_per_epoch(data.y) * (1 - recipe.data.val_fraction))


# --- the idiomatic loop ----------------------------------------------------------------------
class ImageSet(Dataset):
    """Decoded PIL images in memory; per-sample flip, resized crop and colour jitter, as
    torchvision's transforms do them, then a float tensor in [0, 1] (the model standardizes)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, augment: bool, n_classes: int):
        self.images = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in x]
        self.y, self.augment = y.numpy(), augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment:
            rng = np.random.default_rng()
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            side = image.width * math.sqrt(rng.uniform(0.5, 1.0))
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = min(image.width, side * math.sqrt(ratio)), min(image.height, side / math.sqrt(ratio))
            left, top = rng.uniform(0, image.width - w), rng.uniform(0, image.height - h)
            image = image.resize(image.size, Image.BILINEAR, box=(left, top, left + w, top + h))
            for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhance(image).enhance(rng.uniform(0.7, 1.3))
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy()), int(self.y[index])


class FeatureSet(Dataset):
    """Log-mel features as numpy arrays; per-sample mixing with other clips (union of labels),
    gain, circular time shift and SpecAugment masks, as a per-sample audio pipeline does them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, augment: bool, n_classes: int):
        self.x, self.y, self.augment, self.n_classes = x.numpy(), y.numpy(), augment, n_classes

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        features, target = self.x[index].copy(), np.eye(self.n_classes, dtype=np.float32)[self.y[index]]
        if self.augment:
            rng = np.random.default_rng()
            if rng.random() < 0.7:
                for other in rng.integers(0, len(self.x), rng.integers(1, 4)):
                    features = np.logaddexp(features, self.x[other] + rng.uniform(-6, 6) * math.log(10) / 10)
                    target[self.y[other]] = 1.0
            features += rng.uniform(-6, 6) * math.log(10) / 10
            features = np.roll(features, rng.integers(-18, 19), axis=-1)
            fill = features.mean()
            for axis, width in ((1, 12), (2, 20), (1, 12), (2, 20)):
                size = features.shape[axis]
                start, span = rng.integers(0, size), rng.integers(0, width + 1)
                index = [slice(None)] * 3
                index[axis] = slice(start, start + span)
                features[tuple(index)] = fill
        return torch.from_numpy(features), torch.from_numpy(target)


def idiomatic_epoch(model, optimizer, loss_fn, loader) -> int:
    model.train()
    seen = 0
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        seen += len(x)
    return seen


def to_torch_batch_norm(model) -> list:
    """Switches the model's batch norms to torch's own ``nn.BatchNorm2d.forward`` (as a model written
    without reglab would, not reglab's few-channel path, ``models/batchnorm.py``); the ones switched."""
    ours = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    for module in ours:
        module.__class__ = torch.nn.BatchNorm2d
    return ours


@contextmanager
def torch_batch_norm(model):
    """Torch's batch norm for the duration of the block (the idiomatic loop's epochs)."""
    ours = to_torch_batch_norm(model)
    try:
        yield
    finally:
        for module in ours:
            module.__class__ = BatchNorm2d


@torch.no_grad()
def idiomatic_eval(model, loader) -> int:
    model.eval()
    return sum(len(model(x)) for x, _ in loader)


# --- the machine's limit ---------------------------------------------------------------------
def matmul_rate(dtype: torch.dtype, device: torch.device, size: int = 2048, seconds: float = 2.0) -> float:
    """Dense ``size``² matmuls per second, in GFLOP/s."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def profile(run, top: int) -> str:
    """The ``top`` operators by their share of self CPU time over one call of ``run``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        run()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    heaviest = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:top]
    return ", ".join(f"{event.key} {event.self_cpu_time_total / total:.0%}" for event in heaviest)


def flops_per_sample(model, x: torch.Tensor, targets: torch.Tensor, loss_fn) -> float:
    """Forward + backward FLOPs of one training step, per sample."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model(x), targets).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


# --- one configuration -----------------------------------------------------------------------
def measure(name: str, augment: bool, batch: int, args, device) -> dict:
    path, overrides, augmentation = MODELS[name]
    settings = [f"train.batch_size={batch}", "train.repeats=1", augmentation if augment else "augment={}"]
    if args.before:
        settings.append("train.eval_batch_size=512")  # the default then
    recipe = load_recipe(path, overrides + settings + args.set)
    data = sources.load(recipe.data, "train")
    counts, shape, n_classes = data.class_counts(), tuple(data.x.shape[1:]), len(data.classes)
    audio = recipe.data.source == "irmas"
    torch.manual_seed(0)
    loss_fn = create_loss(recipe.loss, counts).to(device)
    model = create_model(recipe.model, shape, n_classes)
    if args.before:
        for module in model.modules():
            if isinstance(module, torch.nn.LocalResponseNorm):
                module.__class__ = torch.nn.LocalResponseNorm  # torch's own forward
        to_torch_batch_norm(model)  # for good: reglab's few-channel path came later
    model.fit(data.x)
    model.to(device)
    optimizer = Optimizer(recipe.optim, model)
    schedule = Schedule(NoScheduleConfig(), optimizer.torch, 1, 1)
    chosen = variants_of(args, name, device, data)
    forward = compiled(model, device) if any(compile for _, _, compile in chosen) else None
    variants = {key: Learner(model, loss_fn, optimizer, schedule, None, autocast(device, amp, name), forward if compile else None)
                for key, amp, compile in chosen}  # fmt: skip
    ops = BatchOps(recipe.augment, counts, shape, recipe.data).to(device)
    planner = EpochPlanner(counts, 0.0, 1, None)
    on_device = Samples(data.x.to(device), data.y.to(device), data.classes, data.ids)
    generator = torch.Generator().manual_seed(0)

    kind = FeatureSet if audio else ImageSet
    dataset, plain = kind(data.x, data.y, augment, n_classes), kind(data.x, data.y, False, n_classes)
    reference_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=args.workers, drop_last=False, persistent_workers=args.workers > 0)
    eval_loader = DataLoader(plain, batch_size=batch, num_workers=args.workers, persistent_workers=args.workers > 0)

    def reglab_epoch(learner) -> int:
        plan = planner.epoch(data.y, generator)
        run_epoch([Member(on_device, ops, learner, Silent())], [plan], batch, one_run(learner))
        return len(plan.order)

    def reference_epoch() -> int:
        with torch_batch_norm(model):
            return idiomatic_epoch(model, reference_optimizer, loss_fn if audio else F.cross_entropy, loader)

    def reglab_eval(learner) -> int:
        if args.before:  # no_grad, as predict_logits was
            with torch.no_grad(), learner.amp:
                model.eval()
                return sum(len(model(on_device.x[i : i + recipe.train.eval_batch_size])) for i in range(0, len(on_device.x), recipe.train.eval_batch_size))
        return len(predict_logits(folded(model), on_device.x, recipe.train.eval_batch_size, learner.amp))  # as a validation does

    timed = {"idiomatic": reference_epoch, "idiomatic eval": lambda: idiomatic_eval(model, eval_loader)}
    # evaluation runs the model uncompiled, so a row's evaluation is that of the first uncompiled row at its precision
    evaluation = {key: next((other for other, other_amp, other_compiled in chosen if other_amp == amp and not other_compiled), key)
                  for key, amp, _ in chosen}  # fmt: skip
    for key, learner in variants.items():
        timed[key] = functools.partial(reglab_epoch, learner)
        if evaluation[key] == key:
            timed[f"{key} eval"] = functools.partial(reglab_eval, learner)
    if args.peak_of:  # the --memory pass's child: this loop alone, twice, its peak counted from here on
        Path("/proc/self/clear_refs").write_text("5")  # the peak resident set so far (decoding, setup) is forgotten
        timed[args.peak_of](), timed[args.peak_of]()
        own = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
        del loader, eval_loader  # its DataLoader workers end and are reaped
        return {"peak_mib": max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024}
    rates, warm_up, gpu_peaks = {key: [] for key in timed}, {}, {}
    for repeat in range(args.repeats + 1):  # the first round warms up (and compiles) and is not counted
        for key, run in timed.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            seen = run()
            if device.type == "cuda":
                torch.cuda.synchronize()
                gpu_peaks[key] = max(gpu_peaks.get(key, 0.0), torch.cuda.max_memory_allocated() / 2**20)
            if repeat:
                rates[key].append(seen / (time.perf_counter() - started))
            else:
                warm_up[key] = (seen, time.perf_counter() - started)
    rates = {key: statistics.median(values) for key, values in rates.items()}
    compile_seconds = {key: warm_up[key][1] - warm_up[key][0] / rates[key] for key, learner in variants.items() if learner.forward is not model}
    heaviest = {key: profile(functools.partial(reglab_epoch, learner), args.profile) for key, learner in variants.items()} if args.profile else {}
    sample = data.x[:batch].to(device)
    flops = flops_per_sample(model, sample, targets_for(data.y[:batch].to(device), n_classes), loss_fn)
    memory = {"peak_mib": {key: gpu_peaks[key] for key in ["idiomatic", *variants]}} if gpu_peaks else {}  # CUDA's, from the rounds
    return {"model": name, "augment": augment, "batch": batch, "flops_per_sample": flops, "profile": heaviest,
            "compile_seconds": compile_seconds, "variants": list(variants), "evaluation": evaluation, **rates, **memory}  # fmt: skip


def peak_memory(name: str, augment: bool, batch: int, key: str, args) -> float:
    """``key``'s loop trained alone in a fresh process: its peak resident memory in MiB."""
    command = [sys.executable, __file__, "--models", name, "--batches", str(batch), "--peak-of", key, "--augment", str(int(augment)),
               "--workers", str(args.workers)] + [f"--{flag}" for flag in ("before", "bf16", "compile", "defaults") if getattr(args, flag)]  # fmt: skip
    command += [f"--set={override}" for override in args.set]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])["peak_mib"]


def variants_of(args, name: str, device, data) -> list[tuple[str, str, bool]]:
    """reglab's timed variants of model ``name``: (row key, ``train.amp``, compiled or not)."""
    amps = [("reglab", "off")] + ([("reglab bf16", "bf16")] if args.bf16 else [])
    chosen = [(key, amp, False) for key, amp in amps] + ([(f"{key} compiled", amp, True) for key, amp in amps] if args.compile else [])
    if args.defaults:
        amp = concrete_amp("auto", device, name)
        compile = concrete_compile("auto", device, name, example_samples(name, data))
        chosen.append((f"auto: {'bf16' if amp == 'bf16' else 'fp32'}{' compiled' if compile else ''}", amp, compile))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the idiomatic loop")
    parser.add_argument("--bf16", action="store_true", help="also time reglab under train.amp: bf16 in the same rounds (the idiomatic loop stays in float32)")
    parser.add_argument("--compile", action="store_true", help="also time reglab's loop under train.compile (torch.compile), in each precision, in the same rounds")
    parser.add_argument("--defaults", action="store_true", help="also time reglab's loop as train.amp: auto and train.compile: auto take it for a run of the model's example recipe")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP", help="also print the TOP operators of a reglab epoch by self CPU time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override laid over every model's benchmark recipe, e.g. model.width=0.75 (InstruNet at its example's width)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--before", action="store_true", help="reglab without its allocator setting, fused LRN, inference mode and folded batch norms")
    parser.add_argument("--memory", action="store_true", help="also each loop's peak resident memory, each trained alone in a fresh process")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)  # the --memory pass's child: one loop of one configuration
    parser.add_argument("--augment", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_of:
        if not args.before:
            keep_freed_memory()
        print(json.dumps(measure(args.models[0], bool(args.augment), args.batches[0], args, pick_device("auto"))))
        return
    if not args.before:
        keep_freed_memory()
    device = pick_device("auto")
    fp32 = matmul_rate(torch.float32, device)
    bf16 = matmul_rate(torch.bfloat16, device) if device.type == "cuda" or cpu_has_bf16() else float("nan")
    print(f"reglab {'before' if args.before else 'after'} issue 16; device {device}, {torch.get_num_threads()} threads; 2048² matmul: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s")
    show_memory = args.memory or device.type == "cuda"  # on CUDA measured in the timed rounds themselves
    where = " GPU" if device.type == "cuda" else ""
    memory = f" reglab peak{where} MiB | idiomatic peak{where} MiB |" if show_memory else ""
    print("| model | augment | batch | reglab | reglab samples/s | idiomatic (fp32) | ratio | GFLOP/sample | reglab GFLOP/s | share of fp32 rate "
          f"| share of bf16 rate | compile s | eval reglab | eval idiomatic | eval ratio |{memory}")
    print("| --- " * (15 + 2 * show_memory) + "|")
    rows = []
    for name in args.models:
        for augment in (False, True):
            for batch in args.batches:
                row = measure(name, augment, batch, args, device)
                rows.append(row)
                if args.memory and device.type != "cuda":
                    row["peak_mib"] = {key: peak_memory(name, augment, batch, key, args) for key in ["idiomatic"] + row["variants"]}
                for key in row["variants"]:
                    gflops = row[key] * row["flops_per_sample"] / 1e9
                    row[f"{key} share of fp32 rate"] = gflops / fp32
                    evaluated = row["evaluation"][key]
                    compile_seconds = f"{row['compile_seconds'][key]:.0f}" if key in row["compile_seconds"] else "—"
                    print(f"| {name} | {'on' if augment else 'off'} | {batch} | {key.replace('reglab bf16', 'bf16').replace('reglab', 'fp32')} | {row[key]:.0f} | "
                          f"{row['idiomatic']:.0f} | {row[key] / row['idiomatic']:.2f} | {row['flops_per_sample'] / 1e9:.3f} | {gflops:.0f} | {gflops / fp32:.0%} | {gflops / bf16:.0%} | "
                          f"{compile_seconds} | {row[f'{evaluated} eval']:.0f} | {row['idiomatic eval']:.0f} | {row[f'{evaluated} eval'] / row['idiomatic eval']:.2f} |"
                          + (f" {row['peak_mib'][key]:.0f} | {row['peak_mib']['idiomatic']:.0f} |" if show_memory else ""), flush=True)  # fmt: skip
                for key, heaviest in row["profile"].items():
                    print(f"  {key} epoch, share of self CPU time: {heaviest}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "fp32_gflops": fp32, "bf16_gflops": bf16, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
