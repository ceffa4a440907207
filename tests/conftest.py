"""Shared fixtures: paths to ../shared data and writers of tiny data sets in each layout."""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist each worker process gets its share of the cores for torch, and so do the
    ``reglab`` processes its tests start (OMP_NUM_THREADS), so that two workers on two cores do not
    each run two threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


def pytest_collection_modifyitems(session, config, items):
    """The files with the most slow (multi-process) tests first: pytest-xdist hands whole files to
    its workers in this order, so the long ones start at once instead of one of them last, alone."""
    slow = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # most slow tests first; stable: each file's own order kept


SHARED_DATA = ROOT.parent / "shared" / "data"


def write_recipe(folder: Path, body: str | bytes, name: str = "recipe.yaml") -> Path:
    """A recipe file (text, or raw bytes for damaged ones) in ``folder``."""
    path = folder / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``reglab ARGV`` in this process: exit code, stdout, stderr."""
    from reglab.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def worker_mid_run(read: Callable[[], list], epochs: int, ready: Callable[[list], bool] = lambda trials: True,
                   pids: set | None = None, timeout: float = 120) -> tuple[int, int]:
    """The pid of a worker whose running trial has finished an epoch and has at least one whole epoch
    to go after the one in progress (so a signal sent at once lands inside that run, however loaded
    the machine), and that trial's number. ``read()`` gives the study's trials afresh (``[]`` before
    its storage exists), ``ready(trials)`` says whether to choose yet, ``pids`` limits the choice."""
    from optuna.trial import TrialState

    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.05)
        trials = read()
        if not ready(trials):
            continue
        for trial in trials:
            pid = trial.user_attrs.get("worker_pid")
            if trial.state == TrialState.RUNNING and 1 <= len(trial.intermediate_values) <= epochs - 2 and pid is not None \
                    and (pids is None or pid in pids):  # fmt: skip
                return pid, trial.number
    raise AssertionError("no worker's run got past its first epoch with an epoch to spare")


@contextlib.contextmanager
def torch_threads(count: int):
    """Torch's intra-op threads set to ``count`` for the block, then back (a run's numbers depend on them)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def trials_reader(directory: Path, engine) -> Callable[[], list]:
    """Reads the trials of the study or sweep in ``directory`` (``[]`` until it exists), its storage opened once."""
    opened = []

    def read() -> list:
        if not opened and (directory / f"{engine.kind}.json").exists():
            opened.append(engine(directory).optuna)
        return opened[0].get_trials() if opened else []

    return read


def write_png(path: Path, rng: np.random.Generator, size=(12, 12), shade: int | None = None) -> None:
    """A small RGB image; ``shade`` biases the colour so classes are learnable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8)
    if shade is not None:
        pixels[..., shade % 3] += 150
    Image.fromarray(pixels).save(path)


@pytest.fixture
def folded_copies(monkeypatch) -> list:
    """The models ``models.folding.folded`` copies while the test runs (one per fold)."""
    import copy
    import types

    from reglab.models import folding

    copies: list = []
    monkeypatch.setattr(folding, "copy", types.SimpleNamespace(deepcopy=lambda model: copies.append(model) or copy.deepcopy(model)))
    return copies


def write_image_folder(root: Path, counts: dict[str, int], pattern: str = "{i}.png", size=(12, 12), seed: int = 0) -> Path:
    """``root/<class>/<pattern>`` images, the k-th class tinted by colour channel k (learnable),
    ``counts`` images per class."""
    rng = np.random.default_rng(seed)
    for shade, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_png(root / name / pattern.format(name=name, i=i), rng, size=size, shade=shade)
    return root


@pytest.fixture
def image_tree(tmp_path) -> Path:
    """``train/<class>/*.png`` with 3 colour-coded classes of 12, 8 and 6 images."""
    return write_image_folder(tmp_path / "images", {"red": 12, "green": 8, "blue": 6}, "{name}_{i:03d}.png")


@pytest.fixture
def test_folder(tmp_path) -> tuple[Path, Path]:
    """A competition-style folder of ``<id>.png`` plus its ``id,label`` answer key."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "test"
    rows = ["id,label"]
    for i, (shade, name) in enumerate([(0, "red"), (1, "green"), (2, "blue")] * 3):
        write_png(folder / f"{i:04d}.png", rng, shade=shade)
        rows.append(f"{i:04d},{name}")
    labels = tmp_path / "test_labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return folder, labels


@pytest.fixture
def cifar_tree(tmp_path) -> Path:
    """CIFAR-10 python batches: two training batches and a test batch of 3 classes."""
    rng = np.random.default_rng(2)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()

    def batch(n, name):
        labels = [i % 3 for i in range(n)]
        data = rng.integers(0, 255, size=(n, 3072), dtype=np.uint8)
        with (root / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, handle)

    batch(12, "data_batch_1")
    batch(9, "data_batch_2")
    batch(6, "test_batch")
    with (root / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird"]}, handle)
    return root


@pytest.fixture
def tiny_imagenet_tree(tmp_path) -> Path:
    """``train/<wnid>/images/*.JPEG`` and ``val/images`` with ``val_annotations.txt``."""
    rng = np.random.default_rng(3)
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819", "n01641577"]
    notes = []
    for shade, wnid in enumerate(wnids):
        for i in range(4):
            write_png(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", rng, shade=shade)
        for i in range(2):
            name = f"val_{shade * 2 + i}.JPEG"
            write_png(root / "val" / "images" / name, rng, shade=shade)
            notes.append(f"{name}\t{wnid}\t0\t0\t11\t11")
    (root / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    return root
