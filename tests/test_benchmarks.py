"""Benchmark scripts that must behave on any machine."""

import importlib.util
import subprocess
import sys

import pytest
import torch

from .conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU path is the check itself")
def test_the_cuda_check_says_in_one_line_that_there_is_no_gpu_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cuda_check.py"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout.count("\n") == 1 and "no CUDA device" in done.stdout
    assert not (tmp_path / "out").exists()


def benchmark(monkeypatch, name: str, *args) -> None:
    """``benchmarks/NAME.py ARGS`` run in this process (a subprocess would import torch again,
    seconds each time); the recording chain's refusal of bad input is checked as a command, below."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *map(str, args)])
    script.main()


def test_the_recording_chain_keeps_each_excerpt_its_length_and_labels_and_changes_its_sound(tmp_path, monkeypatch):
    import numpy as np
    import soundfile

    source, out = tmp_path / "test", tmp_path / "chain"
    source.mkdir()
    rate, t = 22050, np.arange(22050) / 22050
    for n, frequency in enumerate((220.0, 660.0)):
        tone = 0.3 * np.sin(2 * np.pi * frequency * t)
        soundfile.write(source / f"excerpt_{n}.flac", np.stack([tone, 0.5 * tone], axis=1), rate)
        (source / f"excerpt_{n}.txt").write_text("pia\n")
    benchmark(monkeypatch, "recording_chain", source, out, "--seed", "3")
    for n in range(2):
        clean, _ = soundfile.read(source / f"excerpt_{n}.flac", always_2d=True)
        chained, chained_rate = soundfile.read(out / f"excerpt_{n}.flac", always_2d=True)
        assert chained.shape == clean.shape and chained_rate == rate and np.abs(chained).max() <= 1.0
        assert np.abs(chained - clean).mean() > 0.01  # another sound, not a copy
        assert (out / f"excerpt_{n}.txt").read_text() == "pia\n"

    train, run, valid = tmp_path / "train", tmp_path / "run", tmp_path / "val-chain"
    for label in ("pia", "voi"):
        (train / label).mkdir(parents=True)
        for n in range(2):
            soundfile.write(train / label / f"{label}_{n}.flac", np.stack([tone, tone], axis=1), rate)
    run.mkdir()
    (run / "val_predictions.csv").write_text("id,label,predicted\npia/pia_1,pia,pia\nvoi/voi_0,voi,pia\n")
    benchmark(monkeypatch, "recording_chain", train, valid, "--validation-of", run)
    assert sorted(p.name for p in valid.iterdir()) == ["pia_pia_1.flac", "pia_pia_1.txt", "voi_voi_0.flac", "voi_voi_0.txt"]  # its validation clips only
    assert (valid / "voi_voi_0.txt").read_text() == "voi\n"
    labels = {}
    for stages in ("eq,reverb,compress,level", ""):  # polyphonic validation excerpts, the same ones whatever the stages
        mixed = tmp_path / f"mixed-{stages}"
        benchmark(monkeypatch, "recording_chain", train, mixed, "--validation-of", run, "--mixtures", "6", "--stages", stages)
        labels[stages] = [(mixed / f"mix_{n:04d}.txt").read_text() for n in range(6)]
        assert all(soundfile.info(mixed / f"mix_{n:04d}.flac").frames == len(tone) for n in range(6))
    assert labels[""] == labels["eq,reverb,compress,level"] and {"pia\nvoi\n", "pia\n", "voi\n"} >= set(labels[""])
    assert len(set(labels[""])) > 1
    looped = tmp_path / "looped"  # played 3 times in a row: 3 times as long, the same excerpts and labels
    benchmark(monkeypatch, "recording_chain", train, looped, "--validation-of", run, "--mixtures", "6", "--loops", "3", "--stages", "")
    assert [(looped / f"mix_{n:04d}.txt").read_text() for n in range(6)] == labels[""]
    once, _ = soundfile.read(tmp_path / "mixed-" / "mix_0000.flac")
    thrice, _ = soundfile.read(looped / "mix_0000.flac")
    assert np.allclose(thrice, np.tile(once, 3), atol=1e-4)
    stereo = tmp_path / "stereo"  # the same mixtures, each clip panned: two channels that differ
    benchmark(monkeypatch, "recording_chain", train, stereo, "--validation-of", run, "--mixtures", "6", "--stereo", "--stages", "")
    assert [(stereo / f"mix_{n:04d}.txt").read_text() for n in range(6)] == labels[""]
    panned = [soundfile.read(stereo / f"mix_{n:04d}.flac", always_2d=True)[0] for n in range(6)]
    assert all(p.shape == (len(tone), 2) for p in panned) and any(not np.allclose(p[:, 0], p[:, 1], atol=1e-3) for p in panned)
    (run / "val_predictions.csv").write_text("id,label,predicted\ncel/cel_0,cel,pia\n")  # a run of another training folder
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recording_chain.py"), str(train), str(tmp_path / "other"), "--validation-of", str(run)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "no audio file for cel/cel_0" in done.stderr and "Traceback" not in done.stderr


def test_the_study_timer_never_writes_its_kept_studies_over_an_existing_folder(tmp_path, monkeypatch):
    kept = tmp_path / "kept"
    (kept / "1").mkdir(parents=True)
    (kept / "1" / "table.json").write_text("{}")
    with pytest.raises(SystemExit, match="--keep: .*kept exists"):
        benchmark(monkeypatch, "study_time", ROOT / "examples" / "ablation.yaml", "--keep", kept)
    assert (kept / "1" / "table.json").read_text() == "{}" and sorted(p.name for p in kept.iterdir()) == ["1"]
