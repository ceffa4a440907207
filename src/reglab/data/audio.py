"""Reading audio: wav/flac/ogg/mp3 through soundfile, downmixed to mono (or kept as the downmix plus
each channel), resampled with soxr."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile
import soxr

from ..errors import UserError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


@contextmanager
def decoder_notes_silenced():
    """libsndfile's MP3 decoder (mpg123) writes notes ("Illegal Audio-MPEG-Header", "Trying to
    resync...") straight to file descriptor 2: silenced while it decodes, so that a damaged file
    is the one-line error reglab gives, not that line under the decoder's notes."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_audio(path: Path, sample_rate: int, on_error: str = "raise", channels: str = "downmix") -> Optional[np.ndarray]:
    """Mono float32 at ``sample_rate``, or with ``channels="each"`` ``[1 + channels, samples]``:
    the downmix, then every channel of a multichannel file. ``None`` (with a warning) for an
    undecodable file when ``on_error`` is ``skip``, a one-line ``UserError`` otherwise."""
    try:
        with decoder_notes_silenced():
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        if on_error == "skip":
            print(f"reglab: warning: skipping {path}: cannot decode audio ({exc})", file=sys.stderr)
            return None
        raise UserError(f"{path}: cannot decode audio ({exc}); set data.on_error=skip to leave it out") from None
    views = data.mean(axis=1, keepdims=True)
    if channels == "each" and data.shape[1] > 1:
        views = np.concatenate([views, data], axis=1)
    if rate != sample_rate:
        views = soxr.resample(views, rate, sample_rate).astype(np.float32)
    return views.T if channels == "each" else views[:, 0]


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad to exactly ``length`` samples."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


def windows(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    """``[K, length]`` windows every ``hop`` samples covering the whole wave (the last one padded)."""
    count = max(1, int(np.ceil((len(wave) - length) / hop)) + 1) if len(wave) > length else 1
    return np.stack([fit_length(wave[k * hop : k * hop + length], length) for k in range(count)])
