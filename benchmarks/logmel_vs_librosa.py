"""Log-mel features for every training clip: reglab's batched torch front end against
``librosa.feature.melspectrogram`` clip by clip, same parameters, side by side in one process.
A second part times loading the training set through the feature cache, cold and warm.

    pip install -e '.[bench]'
    python benchmarks/logmel_vs_librosa.py [--data ../shared/data/instruments/train]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from reglab import data as sources
from reglab.data.audio import fit_length
from reglab.data.audio_sources import decode_all, log_mel
from reglab.data.irmas import list_training
from reglab.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "instruments" / "train"))
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "instrunet.yaml"))
    args = parser.parse_args()
    config = load_recipe(args.recipe, [f"data.path={args.data}"]).data
    fe = config.frontend
    files, _, _ = list_training(config.path)
    length = int(round(config.clip_seconds * config.sample_rate))
    waves = np.stack([fit_length(w, length) for w in decode_all(files, config)])
    print(f"{len(files)} clips of {config.clip_seconds} s at {config.sample_rate} Hz; n_fft {fe.n_fft}, hop {fe.hop_length}, "
          f"{fe.n_mels} mels, fmin {fe.fmin}; torch threads {torch.get_num_threads()}")  # fmt: skip

    timings = {"reglab (torch, batched)": [], "librosa (clip by clip)": []}
    for _ in range(3):
        started = time.perf_counter()
        ours = log_mel(waves, config)
        timings["reglab (torch, batched)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = np.stack([
            librosa.feature.melspectrogram(y=w, sr=config.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
                                           n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax, power=2.0)
            for w in waves
        ])  # fmt: skip
        timings["librosa (clip by clip)"].append(time.perf_counter() - started)
    theirs = np.log(np.maximum(theirs, fe.log_floor))[:, None]
    difference = np.abs(ours.numpy() - theirs)
    print(f"values: max |reglab - librosa| = {difference.max():.2e} (log-mel units), mean {difference.mean():.2e}")
    best = {name: min(values) for name, values in timings.items()}
    for name, seconds in best.items():
        print(f"{name:26s} {seconds:7.3f} s  ({len(files) / seconds:8.0f} clips/s)")
    print(f"speed ratio reglab / librosa: {best['librosa (clip by clip)'] / best['reglab (torch, batched)']:.1f}x")

    with tempfile.TemporaryDirectory() as cache:
        cached = config.model_copy(update={"cache_dir": cache})
        started = time.perf_counter()
        sources.load(cached)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        sources.load(cached)
        warm = time.perf_counter() - started
    print(f"training set through the cache: cold {cold:.2f} s (decode + resample + features), warm {warm:.3f} s "
          f"-> {cold / warm:.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
