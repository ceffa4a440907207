"""A second test condition no recipe tunes on: the polyphonic test excerpts passed through another
recording chain — equalization, room reverberation, compression and a level change — each drawn
once per excerpt from a fixed seed, written (with the label files) to a folder outside the
repository; then ``reglab evaluate RUN --data OUT`` scores a run there as on the clean excerpts.

    python benchmarks/recording_chain.py ../shared/data/instruments/test /tmp/instruments-chain [--seed 0]
    python benchmarks/recording_chain.py ../shared/data/instruments/train /tmp/val-chain --validation-of RUN --seed 1

With ``--validation-of RUN`` the source is the training folder (one folder per class) and what
goes through the chain is that run's validation clips (the ids of its ``val_predictions.csv``),
each written as a labelled clip: a validation condition under the same transformations, on
which recipes may be compared (use another ``--seed`` than the test condition's). With
``--mixtures N`` as well, it writes N polyphonic excerpts mixed from those clips instead, as the
test's are polyphonic (the mixtures drawn from their own stream: the same seed mixes the same
excerpts whatever ``--stages`` says). ``--stages eq,reverb`` applies only the stages named
(``--stages ""`` none), to see which stage costs what. ``--loops K`` plays each validation excerpt
K times in a row before the chain (the test's excerpts last 6-10 s, the clips 3 s: without it most
of a validation excerpt's windows start in a silent room). ``--stereo`` pans each clip of a
mixture across a stereo field, as the test's excerpts are stereo (``evaluate.channels: each``
scores each channel beside the downmix).

The chain, per excerpt and applied to every channel alike:
- equalization: three peaking filters (RBJ biquads) at log-uniform centres 100 Hz–6 kHz, gains
  U(−9, 9) dB, Q U(0.7, 2);
- reverberation: a synthetic room response (exponentially decaying noise, RT60 U(0.3, 1.2) s)
  mixed at a direct-to-reverberant ratio U(0, 10) dB;
- compression: a feed-forward compressor (threshold U(−30, −15) dBFS, ratio U(2, 6), 10 ms attack,
  100 ms release, make-up gain to the input's RMS);
- level: a gain of U(−12, 6) dB, clipped at full scale.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from reglab.data.rooms import peaking


def equalize(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    for _ in range(3):
        centre = float(np.exp(rng.uniform(np.log(100), np.log(6000))))
        b, a = peaking(rate, centre, rng.uniform(-9, 9), rng.uniform(0.7, 2.0))
        audio = signal.lfilter(b, a, audio, axis=0)
    return audio


def reverberate(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    rt60, drr_db = rng.uniform(0.3, 1.2), rng.uniform(0.0, 10.0)
    t = np.arange(int(rt60 * rate)) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # −60 dB at rt60
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    response = np.concatenate([[1.0], tail])
    return signal.fftconvolve(audio, response[:, None], axes=0)[: len(audio)]


def compress(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    threshold, ratio = rng.uniform(-30, -15), rng.uniform(2, 6)
    level = np.abs(audio).max(axis=1)
    attack, release = np.exp(-1 / (0.01 * rate)), np.exp(-1 / (0.1 * rate))
    envelope = np.empty_like(level)
    current = 0.0
    for i, x in enumerate(level):  # a one-pole envelope follower (offline: per-sample Python is fine in a benchmark)
        coefficient = attack if x > current else release
        current = coefficient * current + (1 - coefficient) * x
        envelope[i] = current
    over = np.maximum(20 * np.log10(np.maximum(envelope, 1e-9)) - threshold, 0.0)
    gain = 10 ** (-over * (1 - 1 / ratio) / 20)
    out = audio * gain[:, None]
    return out * np.sqrt(np.mean(audio**2) / max(np.mean(out**2), 1e-12))


def level(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(audio * 10 ** (rng.uniform(-12, 6) / 20), -1.0, 1.0)


STAGES = {"eq": equalize, "reverb": reverberate, "compress": compress, "level": level}


def chain(audio: np.ndarray, rate: int, rng: np.random.Generator, stages: tuple[str, ...] = tuple(STAGES)) -> np.ndarray:
    """The stages in their fixed order; a stage left out draws nothing, so the others draw what
    they would draw in the whole chain only when it comes last."""
    for name, stage in STAGES.items():
        if name in stages:
            audio = stage(audio, rate, rng)
    return audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="test excerpts (audio files with .txt label files beside them)")
    parser.add_argument("out", type=Path, help="where the transformed copy goes (outside the repository)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"a comma-separated subset of {','.join(STAGES)} (to see which one costs what)")
    parser.add_argument("--validation-of", type=Path, metavar="RUN", help="the source is a training folder: take this run's validation clips")
    parser.add_argument("--stereo", action="store_true", help="with --mixtures: each clip panned across a stereo field, as the test's excerpts are stereo")
    parser.add_argument("--loops", type=int, default=1, metavar="K", help="with --validation-of: each excerpt played K times in a row before the chain")
    parser.add_argument("--mixtures", type=int, default=0, metavar="N",
                        help="with --validation-of: N polyphonic excerpts, each the sum of 1-3 validation clips of different classes, instead of the clips")  # fmt: skip
    args = parser.parse_args()
    stages = tuple(args.stages.split(",")) if args.stages else ()  # none: the clips as they are, for a side-by-side
    if unknown := set(stages) - set(STAGES):
        raise SystemExit(f"--stages: unknown {', '.join(sorted(unknown))} (known: {', '.join(STAGES)})")
    if (args.mixtures or args.loops != 1) and args.validation_of is None:
        raise SystemExit("--mixtures, --loops: for validation clips; give --validation-of RUN too")
    if args.stereo and not args.mixtures:
        raise SystemExit("--stereo: pans the clips of mixtures; give --mixtures N too")
    if args.loops < 1:
        raise SystemExit(f"--loops: {args.loops}; give 1 or more")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    found = sources(args.source, args.validation_of)
    excerpts = mixtures(found, args.mixtures, np.random.default_rng([args.seed, 1]), np.random.default_rng([args.seed, 2]) if args.stereo else None) if args.mixtures else ((name, *read(path), labels) for path, name, labels in found)
    for name, audio, rate, labels in excerpts:
        audio = np.tile(audio, (args.loops, 1))
        soundfile.write(args.out / f"{name}.flac", chain(audio, rate, rng, stages).astype(np.float32), rate)
        (args.out / f"{name}.txt").write_text(labels)
    print(f"{len(list(args.out.glob('*.txt')))} excerpts through the recording chain (seed {args.seed}, {','.join(stages) or 'no stage'}) into {args.out}")


def read(path: Path) -> tuple[np.ndarray, int]:
    return soundfile.read(path, always_2d=True, dtype="float64")


def mixtures(clips: list[tuple[Path, str, str]], count: int, rng: np.random.Generator, pans: np.random.Generator | None = None):
    """``count`` polyphonic excerpts ``(name, audio, rate, labels)`` like the test's (1-3
    instruments at once): 1-3 clips of different classes summed at gains U(-6, 6) dB, scaled to a
    peak of 0.5, labelled with the union of their labels. With ``pans`` each clip is placed in a
    stereo field as the test's excerpts are (constant-power panning, drawn from that stream so that
    the mixtures are the same ones as without it)."""
    by_label: dict[str, list[Path]] = {}
    for path, _, labels in clips:
        by_label.setdefault(labels.strip(), []).append(path)
    names = sorted(by_label)
    for n in range(count):
        chosen = rng.choice(len(names), size=min(int(rng.integers(1, 4)), len(names)), replace=False)
        parts = [read(by_label[names[i]][rng.integers(len(by_label[names[i]]))]) for i in chosen]
        length, rate = min(len(audio) for audio, _ in parts), parts[0][1]
        audio = sum(audio[:length].mean(axis=1, keepdims=True) * 10 ** (rng.uniform(-6, 6) / 20) * placement(pans) for audio, _ in parts)
        audio *= 0.5 / max(np.abs(audio).max(), 1e-9)
        yield f"mix_{n:04d}", audio, rate, "".join(f"{names[i]}\n" for i in sorted(chosen))


def placement(pans: np.random.Generator | None) -> np.ndarray:
    """Channel gains ``[1]`` (mono), or ``[left, right]`` for a position drawn uniformly across the
    stereo field (sine-cosine law: the same power wherever the source stands, both gains 1 at the centre)."""
    if pans is None:
        return np.ones(1)
    angle = pans.uniform(0, np.pi / 2)
    return np.sqrt(2) * np.array([np.cos(angle), np.sin(angle)])


def sources(folder: Path, run: Path | None) -> list[tuple[Path, str, str]]:
    """(audio file, name in the copy, its label file's text): the test excerpts of ``folder``, or
    the validation clips of ``run`` among ``folder``'s class folders."""
    if run is None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg"))
        return [(path, path.stem, path.with_suffix(".txt").read_text()) for path in files]
    with open(run / "val_predictions.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    found = []
    for row in rows:
        audio = [p for p in (folder / row["id"]).parent.glob(f"{Path(row['id']).name}.*") if p.suffix.lower() in (".wav", ".flac", ".ogg")]
        if not audio:
            raise SystemExit(f"{folder}: no audio file for {row['id']}, a validation clip of {run} (is it the folder the run trained on?)")
        found.append((audio[0], row["id"].replace("/", "_"), f"{row['label']}\n"))
    return found


if __name__ == "__main__":
    main()
