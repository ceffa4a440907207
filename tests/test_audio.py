"""Audio: IRMAS layouts, decoding and resampling, the log-mel front end, spectrogram augmentation,
window aggregation and threshold tuning."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from reglab import data as sources
from reglab.augment import BatchContext
from reglab.augment.mixtures import Mixtures
from reglab.augment.spectrogram import SpecAugment, band_masks, random_time_shift
from reglab.data.audio import read_audio, windows
from reglab.data.feature_cache import FeatureCache
from reglab.data.irmas import label_from_name, list_testing, list_training
from reglab.inference.decisions import aggregate_windows, best_view, tune_thresholds
from reglab.errors import UserError
from reglab.data.frontend import LogMel, mel_filterbank
from reglab.recipe import DataConfig, FrontendConfig, MixturesConfig, SpecAugmentConfig

from .conftest import SHARED_DATA


def context_of(x):
    """What a batch operation is built with, for a batch ``x`` of features."""
    return BatchContext(torch.ones(2), tuple(x.shape[1:]))


def sine(freq, rate, seconds=1.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def test_irmas_file_names_give_the_predominant_instrument(tmp_path):
    assert label_from_name(tmp_path / "[cel][cla]0001__1.wav", "cla") == "cel"
    assert label_from_name(tmp_path / "[gac][jaz_blu]1234__2.wav", "x") == "gac"
    assert label_from_name(tmp_path / "cel_0001.flac", "cel") == "cel"
    for folder, name in [("cel", "[cel][jaz]0001__1.wav"), ("flu", "[flu][cla]0002__3.wav"), ("flu", "plain.flac")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        soundfile.write(tmp_path / folder / name, sine(440, 8000, 0.1), 8000)
    files, labels, classes = list_training(tmp_path)
    assert classes == ["cel", "flu"] and labels == [0, 1, 1]


def test_testing_txt_with_an_unknown_instrument_names_the_file(tmp_path):
    soundfile.write(tmp_path / "a.wav", sine(440, 8000, 0.1), 8000)
    (tmp_path / "a.txt").write_text("cel\nbanjo\n")
    with pytest.raises(UserError, match=r"a\.txt: unknown instrument 'banjo'"):
        list_testing(tmp_path, ["cel", "flu"])
    (tmp_path / "a.txt").write_text("cel\nflu\n")
    files, targets = list_testing(tmp_path, ["cel", "flu", "gac"])
    assert targets.tolist() == [[1.0, 1.0, 0.0]]


def test_resampling_keeps_a_sine_at_its_frequency(tmp_path):
    path = tmp_path / "tone.flac"
    soundfile.write(path, sine(1000.0, 22050, 1.0, channels=2), 22050)  # stereo 22.05 kHz, as the test excerpts
    wave = read_audio(path, 16000)
    assert wave.ndim == 1 and abs(len(wave) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 16000 / len(wave)
    assert abs(peak_hz - 1000.0) < 2.0


def test_each_channel_is_read_beside_the_downmix(tmp_path):
    path = tmp_path / "panned.flac"
    left, right = sine(1000.0, 22050), sine(3000.0, 22050) * 0.25  # a tone on each side
    soundfile.write(path, np.stack([left, right], axis=1), 22050)
    views = read_audio(path, 16000, channels="each")
    assert views.shape[0] == 3 and abs(views.shape[1] - 16000) <= 1
    assert np.allclose(views[0], read_audio(path, 16000), atol=1e-6)  # the downmix, as before
    assert np.allclose(views[0], (views[1] + views[2]) / 2, atol=1e-6)
    assert np.abs(views[1]).max() > 0.45 and np.abs(views[2]).max() < 0.15
    soundfile.write(tmp_path / "mono.flac", left, 22050)
    assert read_audio(tmp_path / "mono.flac", 16000, channels="each").shape[0] == 1


def test_undecodable_audio_is_named_or_skipped(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    with pytest.raises(UserError, match="broken.wav: cannot decode audio"):
        read_audio(bad, 16000)
    assert read_audio(bad, 16000, on_error="skip") is None
    warning = capsys.readouterr().err
    assert warning.startswith("reglab: warning: skipping") and "broken.wav" in warning


def test_mel_filterbank_matches_librosa_defaults_where_known():
    bank = mel_filterbank(16000, 512, 40, 0.0, None)
    assert bank.shape == (40, 257) and bool((bank >= 0).all())
    peaks = bank.argmax(1)
    assert bool((peaks.diff() >= 0).all())  # filters rise in frequency
    # Slaney normalization: each triangle has area 1 in Hz-space up to the bin spacing
    areas = bank.sum(1) * (16000 / 512)
    assert torch.allclose(areas[5:-5], torch.ones(30) * areas[5:-5].mean(), rtol=0.15)


def test_log_mel_of_a_tone_peaks_in_the_right_band():
    config = FrontendConfig(n_fft=1024, hop_length=256, n_mels=64)
    frontend = LogMel(config, 16000)
    features = frontend(torch.from_numpy(np.stack([sine(500, 16000), sine(4000, 16000)])))
    assert features.shape == (2, 1, 64, 16000 // 256 + 1)
    low, high = features[0, 0].mean(1).argmax(), features[1, 0].mean(1).argmax()
    centres = mel_filterbank(16000, 1024, 64, 0.0, None).argmax(1) * 16000 / 1024
    assert abs(float(centres[low]) - 500) < 100 and abs(float(centres[high]) - 4000) < 400


def test_specaugment_masks_the_shapes_it_promises():
    torch.manual_seed(0)
    masks = band_masks(500, 96, count=2, max_width=12, device="cpu")
    per_row = masks.sum(1)
    assert int(per_row.max()) <= 24 and int(per_row.min()) >= 0
    x = torch.randn(64, 1, 96, 150)
    out, _ = SpecAugment(SpecAugmentConfig(freq_masks=1, freq_width=10, time_masks=0, time_width=0), context_of(x))(x, None, None)
    changed_rows = (out != x).any(dim=3)[:, 0]  # [B, F]: which mel rows were masked
    widths = changed_rows.sum(1)
    assert int(widths.max()) <= 10
    for b in range(64):  # one contiguous band per spectrogram, filled with its mean
        rows = torch.nonzero(changed_rows[b]).flatten()
        if len(rows):
            assert int(rows.max() - rows.min() + 1) == len(rows)
            assert torch.allclose(out[b, 0, rows], x[b].mean().expand(len(rows), 150))
    timed, _ = SpecAugment(SpecAugmentConfig(freq_masks=0, freq_width=0, time_masks=2, time_width=20), context_of(x))(x, None, None)
    assert int((timed != x).all(dim=2)[:, 0].sum(1).max()) <= 40


def test_time_shift_rolls_each_spectrogram():
    x = torch.arange(10.0).view(1, 1, 1, 10).repeat(4, 1, 2, 1)
    shifted = random_time_shift(x, 0.3)
    for b in range(4):
        offset = int((shifted[b, 0, 0, 0] - x[b, 0, 0, 0]) % 10)
        assert torch.equal(shifted[b], x[b].roll(-offset, dims=-1))


def test_mixtures_union_the_labels_and_add_power():
    torch.manual_seed(0)
    x = torch.log(torch.rand(8, 1, 4, 5) + 0.1)
    targets = torch.eye(8)
    mixed, mixed_targets = Mixtures(MixturesConfig(p=1.0, max_sources=2, gain_db=0.0), context_of(x))(x, targets)
    assert bool((mixed_targets.sum(1) >= 1).all()) and bool((mixed_targets.sum(1) <= 2).all())
    assert bool((mixed >= x - 1e-6).all())  # adding power never lowers a bin


def test_window_aggregation_on_a_hand_computed_score_matrix():
    scores = torch.tensor([[0.1, 0.9], [0.3, 0.5], [0.8, 0.2], [0.6, 0.4], [0.2, 0.2]])
    owner = torch.tensor([0, 0, 0, 1, 1])
    assert torch.allclose(aggregate_windows(scores, owner, "mean"), torch.tensor([[0.4, 1.6 / 3], [0.4, 0.3]]))
    assert torch.allclose(aggregate_windows(scores, owner, "max"), torch.tensor([[0.8, 0.9], [0.6, 0.4]]))
    assert torch.allclose(aggregate_windows(scores, owner, "topk", 2), torch.tensor([[0.55, 0.7], [0.4, 0.3]]))


def test_best_view_keeps_each_moments_highest_score_then_windows_aggregate():
    # excerpt 0: moments 0, 1; excerpt 1: moment 2; views listed downmix first, then a channel
    scores = torch.tensor([[0.2, 0.5], [0.4, 0.1], [0.9, 0.9], [0.6, 0.3], [0.1, 0.2], [0.3, 0.8]])
    moment = torch.tensor([0, 1, 2, 0, 1, 2])
    owner = torch.tensor([0, 0, 1, 0, 0, 1])
    best, owners = best_view(scores, moment, owner)
    assert torch.equal(best, torch.tensor([[0.6, 0.5], [0.4, 0.2], [0.9, 0.9]]))
    assert owners.tolist() == [0, 0, 1]
    assert torch.allclose(aggregate_windows(best, owners, "mean"), torch.tensor([[0.5, 0.35], [0.9, 0.9]]))


def test_tuned_thresholds_maximize_f1_per_class():
    probs = np.array([[0.9, 0.3], [0.7, 0.35], [0.2, 0.1], [0.6, 0.05]])
    targets = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    thresholds = tune_thresholds(probs, targets)
    assert 0.6 < thresholds[0] <= 0.7 and 0.1 < thresholds[1] <= 0.3


def test_windows_cover_the_whole_excerpt():
    cut = windows(np.arange(10.0), length=4, hop=3)
    assert cut.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert windows(np.arange(3.0), 4, 2).tolist() == [[0, 1, 2, 0]]


def test_shared_instruments_load_and_cache(tmp_path):
    config = DataConfig(source="irmas", path=str(SHARED_DATA / "instruments" / "train"), classes=["cel", "tru"],
                        cache_dir=str(tmp_path / "cache"), frontend={"n_mels": 32, "hop_length": 512})  # fmt: skip
    clips = sources.load(config)
    assert clips.x.shape == (115, 1, 32, 94) and clips.class_counts().tolist() == [40, 75]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = sources.load(config)
    assert torch.equal(again.x, clips.x)
    excerpts = sources.load_excerpts(config.model_copy(update={"path": str(SHARED_DATA / "instruments" / "test")}),
                                     ["cel", "cla", "flu", "gac", "gel", "org", "pia", "sax", "tru", "vio", "voi"])  # fmt: skip
    assert len(excerpts) == 80 and excerpts.y.shape == (80, 11)
    assert int(excerpts.owner.max()) == 79 and excerpts.windows.shape[1:] == (1, 32, 94)
    assert torch.equal(excerpts.moment, torch.arange(len(excerpts.windows)))
    stereo = sources.load_excerpts(config.model_copy(update={"path": str(SHARED_DATA / "instruments" / "test")}),
                                   excerpts.classes, channels="each")  # fmt: skip
    assert len(stereo.windows) == 3 * len(excerpts.windows)  # the test excerpts are stereo: downmix, left, right
    assert torch.equal(stereo.moment.unique(), excerpts.moment)
    first = stereo.moment == 0
    assert stereo.owner[first].tolist() == [0, 0, 0]
    assert torch.allclose(stereo.windows[first][0], excerpts.windows[0])


def test_feature_cache_survives_processes_filling_the_same_entry_at_once(tmp_path):
    writer = (
        "import sys, torch\n"
        "from reglab.data.feature_cache import FeatureCache\n"
        "cache = FeatureCache(sys.argv[1])\n"
        "for _ in range(200):\n"
        "    cache.put('same', {'x': torch.zeros(64, 64)})\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", writer, str(tmp_path)], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert torch.equal(FeatureCache(tmp_path).get("same")["x"], torch.zeros(64, 64))
    assert [path.name for path in tmp_path.iterdir()] == ["same.pt"]


def test_an_excerpt_that_lists_no_instrument_is_refused(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "a.txt").write_text("\n")
    with pytest.raises(UserError, match="a.txt: lists no instrument"):
        list_testing(tmp_path, ["cel", "pia"])


def test_freq_mixstyle_gives_spectrograms_blends_of_band_statistics_and_keeps_their_shape():
    from reglab.augment.freq_mixstyle import FreqMixStyle
    from reglab.recipe.augment import FreqMixStyleConfig

    torch.manual_seed(0)
    pattern = torch.randn(32, 1, 40, 30)
    levels = torch.arange(32.0).view(32, 1, 1, 1) * torch.linspace(-1, 1, 40).view(1, 1, 40, 1)  # a tilt per spectrogram
    x = pattern * 2.0 + levels

    def standardized(t):
        return (t - t.mean(dim=(1, 3), keepdim=True)) / t.std(dim=(1, 3), keepdim=True, correction=0)

    out, _ = FreqMixStyle(FreqMixStyleConfig(p=1.0, alpha=0.3), context_of(x))(x, None, None)
    assert torch.allclose(standardized(out), standardized(x), atol=1e-3)  # what varies along time is kept
    tilt = out.mean(dim=(1, 3))[:, -1] - out.mean(dim=(1, 3))[:, 0]  # each band mean is a blend of two tilts 0..31
    own = levels[:, 0, -1, 0] - levels[:, 0, 0, 0]
    assert float(tilt.min()) >= -1e-3 and float(tilt.max()) <= float(own.max()) + 1e-3
    assert int(((tilt - own).abs() > 1.0).sum()) >= 16  # most spectrograms took on another's colouring
    untouched, _ = FreqMixStyle(FreqMixStyleConfig(p=0.0), context_of(x))(x, None, None)
    assert torch.allclose(untouched, x, atol=1e-5)


def test_filter_augment_adds_one_piecewise_linear_curve_per_spectrogram():
    from reglab.augment.filter_augment import FilterAugment
    from reglab.recipe import FilterAugmentConfig

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 40, 30)
    out, _ = FilterAugment(FilterAugmentConfig(p=1.0, db=6.0, bands=1), context_of(x))(x, None, None)
    assert torch.equal(out, out[..., :1].expand_as(out))  # the same gain all along time
    limit = 6.0 * np.log(10) / 10
    assert float(out.abs().max()) <= limit + 1e-6 and float(out.abs().max()) > 0.5 * limit
    assert torch.allclose(out[:, 0, 2:, 0] - 2 * out[:, 0, 1:-1, 0] + out[:, 0, :-2, 0], torch.zeros(64, 38), atol=1e-5)  # one band: a line
    four, _ = FilterAugment(FilterAugmentConfig(p=1.0, db=6.0, bands=4), context_of(x))(x, None, None)
    kinks = ((four[:, 0, 2:, 0] - 2 * four[:, 0, 1:-1, 0] + four[:, 0, :-2, 0]).abs() > 1e-4).sum(1)
    assert int(kinks.max()) <= 2 * 3  # three inner edges, each bending the line at most at the two bins around it
    untouched, _ = FilterAugment(FilterAugmentConfig(p=0.0), context_of(x))(x + 1.0, None, None)
    assert torch.equal(untouched, x + 1.0)
