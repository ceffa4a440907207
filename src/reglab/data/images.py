"""Decoding image files once into a uint8 tensor (kept in the feature cache, so the next run of a
study or a sweep reads one file instead of decoding them all again), and resizing uint8 batches."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .feature_cache import FeatureCache, cache_key
from .memory import require

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image(p))


def _decode(path: Path, size: Optional[int], mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot decode image ({exc})") from None


def decode_images(paths: list[Path], size: Optional[int], channels: int, cache_dir: Optional[str | Path] = None) -> torch.Tensor:
    """Decode (and resize) every file once; returns uint8 ``[N, C, H, W]``, read from the feature
    cache in ``cache_dir`` when it holds these files (by path, size and modification time) at this
    size and channel count (0.01 s against 0.55 s for the 1,424 typefaces at 64 px, 2 threads)."""
    if not paths:
        return torch.zeros((0, channels, size or 1, size or 1), dtype=torch.uint8)
    if size is not None:
        require(len(paths) * channels * size * size, f"data.image_size: {len(paths)} images of {size}x{size}")
    if cache_dir is None:  # no cache: no file to stat
        return _decode_all(paths, size, channels)
    key = cache_key(paths, {"decoded_images": {"size": size, "channels": channels}})
    cache = FeatureCache(cache_dir)
    entry = cache.get(key, ("x",))
    if entry is not None:
        if holds(entry["x"], len(paths), channels, size):
            return entry["x"]
        print(f"reglab: warning: {cache.directory / key}.pt: a cache entry that does not hold these images; decoding them again", file=sys.stderr)
    x = _decode_all(paths, size, channels)
    cache.put(key, {"x": x})
    return x


def holds(x, count: int, channels: int, size: Optional[int]) -> bool:
    """Whether a cache entry's tensor can be ``count`` decoded images of this shape."""
    shape_ok = isinstance(x, torch.Tensor) and x.dim() == 4 and tuple(x.shape[:2]) == (count, channels)
    return shape_ok and x.dtype == torch.uint8 and (size is None or tuple(x.shape[2:]) == (size, size))


def _decode_all(paths: list[Path], size: Optional[int], channels: int) -> torch.Tensor:
    mode = "L" if channels == 1 else "RGB"
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _decode(p, size, mode), paths))
    first = arrays[0].shape
    for path, array in zip(paths, arrays):
        if array.shape != first:
            raise UserError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]} but {paths[0].name} is "
                f"{first[1]}x{first[0]}; set data.image_size to resize them all"
            )
    stacked = np.stack(arrays)
    stacked = stacked[:, None] if channels == 1 else stacked.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stacked))


def resize_uint8(x: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of a uint8 ``[N, C, H, W]`` batch to ``size`` x ``size``."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    require(x.shape[0] * x.shape[1] * size * size * 5, f"data.image_size: {x.shape[0]} images of {size}x{size}")  # uint8 + float
    resized = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def match_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma (as PIL's ``convert('L')``)."""
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
