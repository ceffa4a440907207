"""Audio sources: IRMAS training clips as log-mel ``Samples``, and IRMAS testing excerpts as
sliding-window ``Excerpts``. Features are computed in batches by the torch front end and cached."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import UserError
from .frontend import LogMel
from .audio import fit_length, read_audio, windows
from .dataset import Excerpts, Samples
from .feature_cache import FeatureCache, cache_key
from .irmas import list_testing, list_training
from .rooms import in_rooms

BATCH = 64


def frontend_params(config, kind: str) -> dict:
    return {"kind": kind, "sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds,
            "hop_seconds": config.window_hop_seconds, **config.frontend.model_dump()}  # fmt: skip


@torch.no_grad()
def log_mel(waves: np.ndarray, config) -> torch.Tensor:
    """``[N, samples]`` → ``[N, 1, n_mels, frames]``, computed ``BATCH`` clips at a time."""
    frontend = LogMel(config.frontend, config.sample_rate)
    chunks = [frontend(torch.from_numpy(waves[i : i + BATCH])) for i in range(0, len(waves), BATCH)]
    return torch.cat(chunks)


def decode_all(files, config, channels: str = "downmix") -> list:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda f: read_audio(f, config.sample_rate, config.on_error, channels), files))


def load_irmas_clips(config) -> Samples:
    """The training clips' features and, with ``data.rooms``, their features in simulated rooms."""
    files, labels, classes = list_training(config.path, config.classes)
    cache = FeatureCache(config.cache_dir)
    rooms = config.rooms.model_dump(exclude={"p", "consistency"}) if config.rooms else None
    key = cache_key(files, frontend_params(config, "clips") | ({"rooms": rooms} if rooms else {}))
    payload = cache.get(key, ("x", "kept") + (("variants",) if rooms else ()))
    if payload is None:
        length = int(round(config.clip_seconds * config.sample_rate))
        waves = decode_all(files, config)
        kept = [i for i, wave in enumerate(waves) if wave is not None]
        if not kept:
            raise UserError(f"{config.path}: no audio file could be decoded")
        stacked = np.stack([fit_length(waves[i], length) for i in kept])
        payload = {"x": log_mel(stacked, config), "kept": torch.tensor(kept)}
        if rooms:
            chunks = in_rooms(stacked, config.sample_rate, config.rooms)
            payload["variants"] = torch.cat([log_mel(wet.reshape(-1, length), config).unflatten(0, wet.shape[:2]) for wet in chunks])
        cache.put(key, payload)
    kept = payload["kept"].tolist()
    ids = [str(files[i].relative_to(files[i].parents[1]).with_suffix("")) for i in kept]
    return Samples(payload["x"], torch.tensor([labels[i] for i in kept]), classes, ids, payload.get("variants"), config.rooms.p if rooms else 0.0)


def load_irmas_excerpts(config, classes: list[str], channels: str = "downmix") -> Excerpts:
    """Every excerpt cut into clip-length windows every ``window_hop_seconds``; with ``channels``
    ``each``, the downmix and every channel are cut alike (views of the same moments)."""
    files, targets = list_testing(config.path, classes)
    cache = FeatureCache(config.cache_dir)
    key = cache_key(files, frontend_params(config, "excerpts") | {"classes": classes, "channels": channels})
    payload = cache.get(key, ("x", "owner", "moment", "kept"))
    if payload is None:
        length = int(round(config.clip_seconds * config.sample_rate))
        hop = int(round(config.window_hop_seconds * config.sample_rate))
        waves = decode_all(files, config, channels)
        kept = [i for i, wave in enumerate(waves) if wave is not None]
        if not kept:
            raise UserError(f"{config.path}: no audio file could be decoded")
        cut = [np.stack([windows(view, length, hop) for view in np.atleast_2d(waves[i])]) for i in kept]  # [V, K, length]
        owner, moment, start = [], [], 0
        for n, excerpt in enumerate(cut):
            views, count = excerpt.shape[:2]
            owner.append(torch.full((views * count,), n))
            moment.append(torch.arange(start, start + count).repeat(views))  # view after view, as the rows below
            start += count
        rows = np.concatenate([excerpt.reshape(-1, length) for excerpt in cut])
        payload = {"x": log_mel(rows, config), "owner": torch.cat(owner), "moment": torch.cat(moment), "kept": torch.tensor(kept)}
        cache.put(key, payload)
    kept = payload["kept"].tolist()
    return Excerpts(payload["x"], payload["owner"], payload["moment"], targets[kept], classes, [files[i].stem for i in kept])
