"""Predictions on unlabelled recordings of any length: "which instruments play in this file, and
when". A file is read block by block, resampled as a stream (soxr), cut into the run's windows
(its clip length, every ``data.window_hop_seconds``), turned into log-mel features and scored a
batch of windows at a time, so memory stays bounded however long the file is. Window scores then
take the same path as in evaluation: the best of a moment's views (downmix, each channel), the
run's aggregation per file, and its thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr
import torch

from ..data.audio import decoder_notes_silenced, is_audio
from ..data.audio_sources import log_mel
from ..errors import UserError
from ..rundir import check_output, write_csv
from .decisions import aggregate_windows
from .files import write_window_csv
from .trained_run import TrainedRun

BLOCK_SECONDS = 30.0  # audio decoded at a time
WINDOW_BATCH = 64  # windows scored at a time


def audio_files(paths: list[str]) -> list[Path]:
    """Files as given, and every audio file under the folders given, sorted; refused in one line
    when a path does not exist or a folder holds no audio."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            inside = sorted(p for p in given.rglob("*") if is_audio(p))
            if not inside:
                raise UserError(f"--audio {given}: no audio files (wav, flac, ogg, mp3) in this folder")
            found += inside
        elif given.is_file():
            found.append(given)
        else:
            raise UserError(f"--audio {given}: no such file or folder")
    return found


def stream_views(path: Path, sample_rate: int, each_channel: bool) -> Iterator[np.ndarray]:
    """Blocks ``[samples, views]`` of the file at ``sample_rate``: the downmix, then (with
    ``each_channel``) every channel of a multichannel file — as ``read_audio`` gives them whole."""
    try:
        with decoder_notes_silenced():
            audio = soundfile.SoundFile(str(path))
        with audio:
            views = 1 + (audio.channels if each_channel and audio.channels > 1 else 0)
            resampler = soxr.ResampleStream(audio.samplerate, sample_rate, views, dtype="float32") if audio.samplerate != sample_rate else None
            blocks = audio.blocks(blocksize=int(BLOCK_SECONDS * audio.samplerate), dtype="float32", always_2d=True)
            while True:
                with decoder_notes_silenced():  # not while the caller has the block: its own messages stay
                    block = next(blocks, None)
                if block is None:
                    break
                mixed = block.mean(axis=1, keepdims=True)
                block = np.concatenate([mixed, block], axis=1) if views > 1 else mixed
                yield resampler.resample_chunk(block) if resampler else block
            if resampler:
                yield resampler.resample_chunk(np.zeros((0, views), dtype=np.float32), last=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise UserError(f"{path}: cannot decode audio ({exc})") from None


def stream_windows(blocks: Iterator[np.ndarray], length: int, hop: int) -> Iterator[np.ndarray]:
    """Windows ``[views, length]`` every ``hop`` samples covering the whole stream, the last one
    zero-padded (the windows ``data.audio.windows`` cuts from the whole wave)."""
    buffer, start, total, emitted = None, 0, 0, 0  # buffer holds the stream from sample ``start`` on
    for block in blocks:
        buffer = block if buffer is None else np.concatenate([buffer, block])
        total += len(block)
        while emitted * hop + length <= total:
            offset = emitted * hop - start
            yield buffer[offset : offset + length].T
            emitted += 1
        keep_from = min(emitted * hop - start, len(buffer))
        buffer, start = buffer[keep_from:], start + keep_from
    count = max(1, int(np.ceil((total - length) / hop)) + 1) if total > length else 1
    while emitted < count:  # the tail: windows that run past the end, padded with silence
        offset = emitted * hop - start
        piece = buffer[offset : offset + length]
        yield np.pad(piece, ((0, length - len(piece)), (0, 0))).T
        emitted += 1


@dataclass
class RecordingScores:
    path: Path
    windows: np.ndarray  # [W, C] per-window probabilities (best view)
    probabilities: np.ndarray  # [C] aggregated over the file
    window_seconds: float
    hop_seconds: float


def score_recording(trained, path: Path) -> RecordingScores:
    """Window and file probabilities of one recording under a trained audio run."""
    config, evaluate = trained.recipe.data, trained.recipe.evaluate
    length = int(round(config.clip_seconds * config.sample_rate))
    hop = int(round(config.window_hop_seconds * config.sample_rate))
    blocks = stream_views(path, config.sample_rate, evaluate.channels == "each")
    scores, batch = [], []
    for window in stream_windows(blocks, length, hop):
        batch.append(window)
        if len(batch) == WINDOW_BATCH:
            scores.append(score_windows(trained, np.stack(batch)))
            batch = []
    if batch:
        scores.append(score_windows(trained, np.stack(batch)))
    windows = torch.cat(scores)
    owner = torch.zeros(len(windows), dtype=torch.long)
    aggregated = aggregate_windows(windows, owner, evaluate.aggregate, evaluate.top_k)[0]
    return RecordingScores(path, windows.numpy(), aggregated.numpy(), config.clip_seconds, config.window_hop_seconds)


def score_windows(trained, batch: np.ndarray) -> torch.Tensor:
    """``[B, views, samples]`` → ``[B, C]``: each window's probabilities, the best of its views."""
    count, views, samples = batch.shape
    features = log_mel(batch.reshape(count * views, samples), trained.recipe.data)
    probs = trained.window_probabilities(features)
    return probs.view(count, views, -1).amax(1)


def predict_recordings(run_path, paths: list[str], out, with_windows: bool = False, device: str = "auto") -> list[dict]:
    """Score every recording in ``paths`` and write ``out`` (one row per file: path, one
    probability per class, the instruments decided present) and, ``with_windows``,
    ``windows.csv`` beside it (file, start and end seconds, one probability per class). Returns
    per file: path, windows scored, probability per class and the instruments present."""
    out = check_output(out, "--out")
    windows_out = check_output(out.with_name("windows.csv"), "--windows") if with_windows else None
    trained = TrainedRun(run_path, device)
    if not trained.recipe.data.is_audio:
        raise UserError(f"{run_path}: not an audio run (data.source {trained.recipe.data.source}); predict its images with --images")
    files = audio_files(paths)
    thresholds = np.broadcast_to(trained.thresholds(), (len(trained.classes),))
    scored = [score_recording(trained, file) for file in files]
    summary = [{"path": str(result.path), "windows": len(result.windows),
                "probabilities": dict(zip(trained.classes, result.probabilities.tolist())),
                "present": [name for name, p, t in zip(trained.classes, result.probabilities, thresholds) if p >= t]}
               for result in scored]  # fmt: skip
    header = ["path", *(f"p_{name}" for name in trained.classes), "present"]
    write_csv(out, header, ([row["path"], *(f"{p:.6g}" for p in row["probabilities"].values()), ";".join(row["present"])] for row in summary))
    if windows_out is not None:
        window_config = trained.recipe.data
        write_window_csv(windows_out, [(str(r.path), r.windows) for r in scored], trained.classes,
                         window_config.clip_seconds, window_config.window_hop_seconds, "path")  # fmt: skip
    return summary
