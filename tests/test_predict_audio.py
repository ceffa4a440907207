"""Using a trained audio run on recordings nobody labelled: which instruments play, and when."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from reglab.cli import main
from reglab.inference.recordings import stream_views, stream_windows

from .conftest import SHARED_DATA

TRAIN = SHARED_DATA / "instruments" / "train"
RECIPE = f"""
data: {{source: irmas, path: {TRAIN}, frontend: {{n_mels: 32, hop_length: 1024}}}}
model: {{name: instrunet, width: 0.25, input_norm: per_band}}
loss: {{name: bce, class_weights: inverse_frequency}}
optim: {{name: adam, lr: 0.003}}
train: {{epochs: 6, batch_size: 64}}
evaluate: {{threshold: tuned, tuning_mixtures: 100, aggregate: max, channels: each}}
"""


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE.replace("frontend:", f"cache_dir: {root / 'cache'}, frontend:"))
    assert main(["train", str(recipe), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def clip(name: str, index: int = 0) -> np.ndarray:
    wave, rate = soundfile.read(TRAIN / name / f"{name}_{index:04d}.flac", dtype="float32")
    assert rate == 16000
    return wave


def test_stream_windows_are_the_windows_of_the_whole_file(tmp_path):
    """Reading block by block and resampling as a stream gives the windows evaluation cuts from
    the whole decoded file (up to the resampler's rounding)."""
    from reglab.data.audio import read_audio, windows

    rng = np.random.default_rng(0)
    stereo = rng.normal(0, 0.1, (int(22050 * 7.3), 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    soundfile.write(path, stereo, 22050, subtype="FLOAT")
    whole = read_audio(path, 16000, channels="each")  # [3, samples]
    expected = np.stack([windows(view, 48000, 24000) for view in whole], axis=1)  # [K, 3, length]
    streamed = np.stack(list(stream_windows(stream_views(path, 16000, each_channel=True), 48000, 24000)))
    assert streamed.shape == expected.shape == (4, 3, 48000)
    assert np.abs(streamed - expected).max() < 1e-3


def test_two_instruments_are_found_each_in_its_own_half(audio_run, tmp_path, capsys):
    """A 40-second stereo recording: a flute in the first 20 seconds (left), an electric guitar
    in the last 20 (right)."""
    first, second = np.tile(clip("flu"), 7)[: 16000 * 20], np.tile(clip("gel"), 7)[: 16000 * 20]
    recording = np.zeros((16000 * 40, 2), dtype=np.float32)
    recording[: 16000 * 20, 0] = first
    recording[16000 * 20 :, 1] = second
    soundfile.write(tmp_path / "duet.wav", recording, 16000)

    out = tmp_path / "out" / "predictions.csv"
    code = main(["predict", str(audio_run), "--audio", str(tmp_path / "duet.wav"), "--out", str(out), "--windows", "--json", str(tmp_path / "p.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (row,) = list(csv.DictReader(out.open()))
    present = row["present"].split(";")
    assert {"flu", "gel"} <= set(present), row
    windows = list(csv.DictReader((out.parent / "windows.csv").open()))
    assert len(windows) == int(np.ceil((40 - 3) / 1.5)) + 1
    middle = [(float(w["start"]) + float(w["end"])) / 2 for w in windows]
    for name, half in (("flu", 0), ("gel", 1)):
        scores = np.array([float(w[f"p_{name}"]) for w in windows])
        loudest = middle[int(scores.argmax())]
        assert (loudest < 20) == (half == 0), (name, loudest)
        inside = [s for s, m in zip(scores, middle) if (m < 20) == (half == 0)]
        outside = [s for s, m in zip(scores, middle) if (m < 20) != (half == 0)]
        assert np.mean(inside) > 2 * np.mean(outside), (name, np.mean(inside), np.mean(outside))
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["files"][0]["present"] == present and saved["files"][0]["windows"] == len(windows)
    assert f"duet.wav: {', '.join(present)}" in printed


def test_a_recording_of_many_window_batches_is_scored_by_one_folded_copy_of_the_model(audio_run, tmp_path, folded_copies):
    """Batch norms are folded once when the run is loaded, not again for every 64 windows."""
    from reglab.inference.recordings import WINDOW_BATCH, predict_recordings

    soundfile.write(tmp_path / "long.wav", np.tile(clip("flu"), 60)[: 16000 * 150], 16000)
    (result,) = predict_recordings(audio_run, [str(tmp_path / "long.wav")], tmp_path / "p.csv")
    assert result["windows"] > WINDOW_BATCH and len(folded_copies) == 1  # two batches or more


def test_a_folder_of_mp3_and_ogg_recordings_at_other_rates(audio_run, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    soundfile.write(folder / "a.mp3", np.tile(clip("flu"), 2)[:, None].repeat(2, 1), 16000, format="MP3")
    soundfile.write(folder / "b.ogg", clip("gel"), 16000)
    soundfile.write(folder / "c.wav", clip("pia")[::2], 8000)  # 8 kHz, resampled on the way in
    assert main(["predict", str(audio_run), "--audio", str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["a.mp3", "b.ogg", "c.wav"]
    assert all(0.0 <= float(row["p_flu"]) <= 1.0 for row in rows)


def peak_rss_mb(run, recording, out) -> float:
    """Peak resident memory of a ``reglab predict --audio`` process, in MB: its own address space's
    high-water mark (``VmHWM``; ``ru_maxrss`` would keep a forking parent's peak across exec)."""
    probe = ("import sys\nfrom reglab.cli import main\ncode = main(sys.argv[1:])\n"
             "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
             "print(int(hwm.split()[1]) / 1024)\nsys.exit(code)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, "predict", str(run), "--audio", str(recording), "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_long_recording_streams_in_bounded_memory(audio_run, tmp_path):
    """Ten minutes of 44.1 kHz stereo (212 MB as float samples, 330 MB more as the three resampled
    views) predict within the memory three minutes take, plus a margin for the allocator: the file is
    never held whole. (Measured: 565 MB for 3 minutes, 604 MB for 10, 608 MB for 30.)"""
    rng = np.random.default_rng(1)
    for minutes in (3, 10):
        with soundfile.SoundFile(tmp_path / f"{minutes}min.wav", "w", 44100, 2, subtype="PCM_16") as handle:
            for _ in range(minutes * 2):
                handle.write(rng.normal(0, 0.05, (44100 * 30, 2)).astype(np.float32))
    short = peak_rss_mb(audio_run, tmp_path / "3min.wav", tmp_path / "a.csv")
    long = peak_rss_mb(audio_run, tmp_path / "10min.wav", tmp_path / "b.csv")
    assert long < short + 80, (short, long)
    assert long < 1500, (short, long)
    assert len(list(csv.DictReader((tmp_path / "b.csv").open()))) == 1


def test_bad_audio_inputs_are_one_line_errors(audio_run, tmp_path, capfd):
    (tmp_path / "noise.flac").write_bytes(b"not audio at all" * 20)
    (tmp_path / "damaged.mp3").write_bytes(b"\xff\xfb\x90\x00" + np.random.default_rng(0).bytes(3000))  # the MP3 decoder's notes
    image_run = audio_run.parent / "image-run"
    if not image_run.exists():
        recipe = tmp_path / "digits.yaml"
        recipe.write_text("data: {source: digits}\nmodel: {name: linear}\ntrain: {epochs: 1}\n")
        assert main(["train", str(recipe), "--out", str(image_run), "--quiet"]) == 0
    cases = [
        (["predict", audio_run, "--audio", tmp_path / "missing.wav", "--out", tmp_path / "o.csv"], "missing.wav: no such file or folder"),
        (["predict", audio_run, "--audio", tmp_path / "noise.flac", "--out", tmp_path / "o.csv"], "noise.flac: cannot decode audio"),
        (["predict", audio_run, "--audio", tmp_path / "damaged.mp3", "--out", tmp_path / "o.csv"], "damaged.mp3: cannot decode audio"),
        (["evaluate", audio_run, "--data", tmp_path / "damaged.mp3"], "damaged.mp3"),
        (["predict", image_run, "--audio", tmp_path / "noise.flac", "--out", tmp_path / "o.csv"], "not an audio run"),
        (["predict", audio_run, "--images", tmp_path, "--out", tmp_path / "o.csv"], "an audio run; predict recordings with --audio"),
        (["predict", audio_run, "--out", tmp_path / "o.csv"], "predict needs --images DIR, --audio PATH… or --data SPLIT"),
    ]
    capfd.readouterr()
    for argv, needle in cases:
        code = main([str(a) for a in argv])
        err = capfd.readouterr().err  # what the terminal shows, a native library's writes included
        assert code == 2 and needle in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o.csv").exists()


def test_predictions_match_evaluation_on_the_labelled_excerpts(audio_run, tmp_path, capsys):
    """Streamed prediction and whole-file evaluation take the same windows, views, aggregation and
    thresholds: the same probabilities and decisions for every excerpt."""
    test = SHARED_DATA / "instruments" / "test"
    assert main(["evaluate", str(audio_run), "--data", str(test), "--json", str(tmp_path / "eval.json")]) == 0
    assert main(["predict", str(audio_run), "--audio", str(test), "--out", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    evaluated = {row["id"]: row for row in csv.DictReader((audio_run / "eval_test_predictions.csv").open())}
    predicted = {row["path"].rsplit("/", 1)[-1].removesuffix(".flac"): row for row in csv.DictReader((tmp_path / "p.csv").open())}
    assert evaluated.keys() == predicted.keys() and len(predicted) == 80
    classes = json.loads((tmp_path / "eval.json").read_text())["per_class"]
    for excerpt, row in predicted.items():
        assert np.allclose([float(row[f"p_{c}"]) for c in classes], [float(evaluated[excerpt][f"p_{c}"]) for c in classes], atol=2e-3)
        assert set(filter(None, row["present"].split(";"))) == set(filter(None, evaluated[excerpt]["predicted"].split(";")))
