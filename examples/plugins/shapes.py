"""A data set of the user's, held in a NumPy file: grey 24x24 images of four shapes (disc, square,
triangle, cross) at random places, sizes and brightness, under noise. ``python shapes.py`` writes
``shapes.npz`` beside this file (a small training set, where regularization matters, and a larger
test set); ``load(split)`` is what the recipe names as ``data.source: shapes:load``."""

from pathlib import Path

import numpy as np

CLASSES = ["disc", "square", "triangle", "cross"]
HERE = Path(__file__).resolve().parent


def draw(kind: int, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    r = rng.uniform(4.0, 8.0)
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        mask = dy**2 + dx**2 <= r**2
    elif kind == 1:
        mask = (np.abs(dy) <= 0.8 * r) & (np.abs(dx) <= 0.8 * r)
    elif kind == 2:
        mask = (dy <= 0.7 * r) & (dy >= -r + 2 * np.abs(dx))
    else:
        mask = ((np.abs(dy) <= 0.3 * r) | (np.abs(dx) <= 0.3 * r)) & (np.abs(dy) <= r) & (np.abs(dx) <= r)
    image = rng.uniform(0.5, 1.0) * mask + rng.normal(0.0, 0.35, (size, size))
    return np.clip(image * 200 + 30, 0, 255).astype(np.uint8)


def write(path: Path = HERE / "shapes.npz", n_train: int = 400, n_test: int = 2000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % len(CLASSES)
        arrays[f"x_{split}"] = np.stack([draw(k, rng) for k in y])[:, None]
        arrays[f"y_{split}"] = y
    np.savez_compressed(path, classes=np.array(CLASSES), **arrays)
    return path


def load(split: str, file: str = "shapes.npz"):
    """``(x, y, classes)``: uint8 images [N, 1, 24, 24], class indices, class names."""
    path = HERE / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; write it with: python {HERE / 'shapes.py'}")
    with np.load(path, allow_pickle=False) as data:
        return data[f"x_{split}"], data[f"y_{split}"], [str(c) for c in data["classes"]]


if __name__ == "__main__":
    print(f"wrote {write()}")
