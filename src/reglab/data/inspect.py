"""``reglab data inspect PATH``: class counts, imbalance ratio and image sizes (or, for audio,
clip durations and sample rates) of a data set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile
from PIL import Image

from ..errors import UserError
from .cifar import load_cifar
from .folders import list_class_folders
from .images import image_files
from .irmas import list_training
from .layout import detect_source


@dataclass
class DataSummary:
    path: Path
    layout: str
    counts: dict[str, int]  # class -> samples; empty for an unlabelled folder
    sizes: Counter  # (width, height) -> images; for audio, sample rate (Hz) -> clips
    total: int
    durations: tuple[float, float, float] | None = None  # audio: shortest, median, longest clip in seconds

    def as_dict(self) -> dict:
        """What ``data inspect`` prints, for ``--json``."""
        shown = {"path": str(self.path), "layout": self.layout, "samples": self.total, "counts": self.counts,
                 "classes": len(self.counts), "imbalance": self.imbalance if self.counts else None}  # fmt: skip
        if self.durations:
            shortest, median, longest = self.durations
            return {**shown, "seconds": {"shortest": shortest, "median": median, "longest": longest},
                    "sample_rates": {str(rate): n for rate, n in self.sizes.items()}}  # fmt: skip
        return {**shown, "image_sizes": {f"{w}x{h}": n for (w, h), n in self.sizes.items()}}

    @property
    def imbalance(self) -> float:
        """Largest class over smallest class."""
        return max(self.counts.values()) / min(self.counts.values()) if self.counts else float("nan")


def _decoded_sizes(files: list[Path]) -> Counter:
    """Every image decoded in full (a truncated file has a sound header), counted by size."""
    sizes = Counter()
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                sizes[image.size] += 1
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"{file}: cannot decode image ({exc})") from None
    return sizes


def _audio_headers(files: list[Path]) -> tuple[Counter, tuple[float, float, float]]:
    """Sample rates and (shortest, median, longest) durations, read from each file's header."""
    rates, seconds = Counter(), []
    for file in files:
        try:
            info = soundfile.info(str(file))
        except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
            raise UserError(f"{file}: cannot read audio ({exc})") from None
        rates[info.samplerate] += 1
        seconds.append(info.frames / info.samplerate)
    seconds.sort()
    return rates, (seconds[0], seconds[len(seconds) // 2], seconds[-1])


def summarize_recipe_data(path: Path) -> DataSummary:
    """The data a recipe (a run's, a study's or a sweep's) trains on, any source, a user's included."""
    from ..recipe import load_base_recipe
    from . import load

    config = load_base_recipe(path).data
    data = load(config, "train")
    shape = tuple(data.x.shape[1:])
    return DataSummary(path, f"the data of recipe {path.name} ({config.source}, inputs {'x'.join(map(str, shape))})",
                       dict(zip(data.classes, data.class_counts().tolist())), Counter({(shape[-1], shape[-2]): len(data)}), len(data))  # fmt: skip


def summarize(path) -> DataSummary:
    """A data folder's summary, or (given a recipe file) the summary of the data it names."""
    root = Path(path)
    if root.suffix in (".yaml", ".yml") and root.is_file():
        return summarize_recipe_data(root)
    layout = detect_source(root)
    if layout == "irmas":
        files, labels, classes = list_training(root)
        counted = Counter(labels)
        rates, durations = _audio_headers(files)
        return DataSummary(root, "irmas (audio clips)", {name: counted[i] for i, name in enumerate(classes)}, rates, len(files), durations)
    if layout == "cifar":
        data = load_cifar(root, "train" if any(root.glob("data_batch_*")) else "test", None, None)
        counts = dict(zip(data.classes, data.class_counts().tolist()))
        return DataSummary(root, layout, counts, Counter({(32, 32): len(data)}), len(data))
    if layout == "test_folder":
        loose = image_files(root)
        return DataSummary(root, "test_folder (unlabelled)", {}, _decoded_sizes(loose), len(loose))
    if layout == "tiny_imagenet":
        files, labels, classes = list_class_folders(root / "train", images_subdir="images")
    else:
        files, labels, classes = list_class_folders(root)
    counted = Counter(labels)
    counts = {name: counted[i] for i, name in enumerate(classes)}
    return DataSummary(root, layout, counts, _decoded_sizes(files), len(files))
