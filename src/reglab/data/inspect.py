"""``reglab data inspect PATH``: class counts, imbalance ratio and image sizes of a data set."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import UserError
from .cifar import load_cifar
from .folders import list_class_folders
from .images import image_files
from .layout import detect_source


@dataclass
class DataSummary:
    path: Path
    layout: str
    counts: dict[str, int]  # class -> samples; empty for an unlabelled folder
    sizes: Counter  # (width, height) -> images
    total: int

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


def summarize(path) -> DataSummary:
    root = Path(path)
    layout = detect_source(root)
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
