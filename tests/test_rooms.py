"""Training clips heard in simulated rooms (``data.rooms``): the responses, the rendered clips and
their features, and how a training visit picks one."""

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
from scipy import signal

from reglab import data as data_sources
from reglab.data.dataset import Samples
from reglab.data.rooms import in_rooms, peaking, room_response
from reglab.errors import UserError
from reglab.recipe import load_recipe
from reglab.recipe.schema import section

RATE = 8000


def test_a_room_response_decays_60_db_over_rt60_and_holds_the_drr_share_of_the_energy():
    for rt60, drr in ((0.4, 0.0), (1.0, 10.0)):
        response = room_response(RATE, rt60, drr, np.random.default_rng(0))
        assert response[0] == 1.0 and len(response) == int(rt60 * RATE)
        assert np.sum(response[1:] ** 2) == pytest.approx(10 ** (-drr / 10))
        tenth = len(response) // 10  # energy per tenth of the tail: 6 dB less each tenth, as 60 dB over the whole
        energy_db = 10 * np.log10([np.sum(response[1 + k * tenth : 1 + (k + 1) * tenth] ** 2) for k in range(9)])
        assert np.diff(energy_db).mean() == pytest.approx(-6.0, abs=0.3)


def test_a_clip_in_a_room_rings_on_after_its_sound_stops_at_the_same_level_and_the_same_rooms_each_time():
    t = np.arange(RATE) / RATE
    burst = np.where(t < 0.3, np.sin(2 * np.pi * 440 * t), 0.0)[None]  # 0.3 s of tone, then silence
    rooms = section("data", source="irmas", path="x", rooms={"copies": 3, "rt60": [0.6, 0.9], "drr_db": [0.0, 3.0]}).rooms
    wet = np.concatenate(list(in_rooms(burst, RATE, rooms)))
    assert wet.shape == (1, 3, RATE)
    after = slice(int(0.35 * RATE), int(0.5 * RATE))
    assert np.all(np.sqrt(np.mean(wet[0, :, after] ** 2, axis=-1)) > 100 * np.sqrt(np.mean(burst[0, after] ** 2) + 1e-20))
    assert np.sqrt(np.mean(wet**2, axis=-1)) == pytest.approx(np.sqrt(np.mean(burst**2)), rel=1e-4)
    assert np.array_equal(np.concatenate(list(in_rooms(burst, RATE, rooms))), wet)
    assert not np.allclose(wet[0, 0], wet[0, 1])  # each copy its own room


def test_a_steady_room_starts_with_the_tail_of_the_clips_end_as_a_window_of_a_longer_recording_does():
    t = np.arange(RATE) / RATE
    burst = np.where(t > 0.7, np.sin(2 * np.pi * 440 * t), 0.0)[None]  # silence, then tone for the last 0.3 s
    room = {"copies": 2, "rt60": [0.6, 0.9], "drr_db": [0.0, 3.0]}
    start = slice(0, int(0.1 * RATE))
    rms = lambda x: np.sqrt(np.mean(x**2, axis=-1))
    silent_room, steady = (np.concatenate(list(in_rooms(burst, RATE, section("data", source="irmas", path="x", rooms=room | {"steady": s}).rooms))) for s in (False, True))
    assert np.all(rms(silent_room[0, :, start]) < 1e-6 * rms(burst[0]))  # a linear convolution: nothing before the first sound
    assert np.all(rms(steady[0, :, start]) > 0.01 * rms(burst[0]))  # wrapped: the end's tail rings at the start
    assert rms(steady[0]) == pytest.approx([rms(burst[0])] * 2, rel=1e-4)
    long_room = section("data", source="irmas", path="x", rooms={"copies": 1, "rt60": [2.0, 2.5], "steady": True}).rooms
    assert np.concatenate(list(in_rooms(burst, RATE, long_room))).shape == (1, 1, RATE)  # a response longer than the clip folds onto it


def test_with_eq_db_each_copy_is_coloured_by_peaking_filters_within_that_gain():
    b, a = peaking(RATE, 1000.0, 6.0, 1.0)  # the cookbook's filter: +6 dB at its centre, flat far from it
    _, response = signal.freqz(b, a, worN=[2 * np.pi * 1000 / RATE, 1e-3])
    assert 20 * np.log10(np.abs(response)) == pytest.approx([6.0, 0.0], abs=0.01)

    noise = np.random.default_rng(0).standard_normal((1, 4 * RATE))
    dry_room = {"copies": 4, "rt60": [0.01, 0.01], "drr_db": [60.0, 60.0]}  # a room that leaves the sound as it is
    def band_db(eq_db):  # each copy's energy in 16 bands, relative to the dry clip's
        rooms = section("data", source="irmas", path="x", rooms=dry_room | {"eq_db": eq_db}).rooms
        wet = np.concatenate(list(in_rooms(noise, RATE, rooms)))[0]
        bands = lambda x: np.add.reduceat(np.abs(np.fft.rfft(x, axis=-1)) ** 2, np.linspace(0, 2 * RATE, 17).astype(int)[:-1], axis=-1)
        return 10 * np.log10(bands(wet) / bands(noise[0]))
    flat, coloured = band_db(0.0), band_db(9.0)
    assert np.abs(flat).max() < 0.1  # without eq_db nothing is coloured
    spread = coloured.max(axis=1) - coloured.min(axis=1)  # a coloured copy's bands differ by up to twice 9 dB (plus the RMS rescaling)
    assert np.all(spread > 2.0) and np.all(spread < 2 * 3 * 9.0)
    assert not np.allclose(coloured[0], coloured[1]) and np.array_equal(coloured, band_db(9.0))  # each copy its own colour, every time


def test_a_visit_takes_a_rooms_rendering_with_probability_p():
    x = torch.zeros(50, 1, 2, 3)
    variants = torch.arange(1, 5).float().view(1, 4, 1, 1, 1).expand(50, 4, 1, 2, 3)
    index = torch.randint(50, (20000,))
    torch.manual_seed(0)
    for p in (0.0, 0.3, 1.0):
        seen = Samples(x, torch.zeros(50, dtype=torch.long), ["a"], [str(i) for i in range(50)], variants, p).visited(index)[:, 0, 0, 0]
        assert (seen > 0).float().mean().item() == pytest.approx(p, abs=0.02)
        if p == 1.0:  # the copies drawn uniformly
            assert torch.bincount(seen.long(), minlength=5)[1:].float().div(len(index)).sub(0.25).abs().max() < 0.02


def test_rooms_come_with_the_training_clips_and_are_refused_for_images(tmp_path):
    for label in ("pia", "voi"):
        (tmp_path / label).mkdir()
        for n in range(3):
            soundfile.write(tmp_path / label / f"{label}_{n}.flac", 0.1 * np.random.default_rng(n).standard_normal(RATE), RATE)
    recipe = load_recipe(None, [f"data={{source: irmas, path: {tmp_path}, sample_rate: {RATE}, clip_seconds: 1.0, cache_dir: null,"
                                " rooms: {copies: 2, p: 0.25}}"])  # fmt: skip
    clips = data_sources.load(recipe.data, "train")
    assert clips.variants.shape == (6, 2, *clips.x.shape[1:]) and clips.variant_p == 0.25
    assert not torch.allclose(clips.variants[:, 0], clips.x)
    assert clips.subset(torch.tensor([4, 1])).variants.shape[0] == 2
    with pytest.raises(UserError, match="data.rooms"):
        load_recipe(None, ["data={source: digits, rooms: {copies: 2}}"])
    from reglab import api  # a run with the rooms' consistency term trains, and validates on the clips alone

    paired = load_recipe(None, [f"data={{source: irmas, path: {tmp_path}, sample_rate: {RATE}, clip_seconds: 1.0, cache_dir: null,"
                                " rooms: {copies: 2, consistency: 5.0}}", "model={name: instrunet, width: 0.25}", "train={epochs: 2, batch_size: 4}"])  # fmt: skip
    result = api.train(paired, tmp_path / "run", report=False)
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(history) == 2 and result.metrics["epochs_run"] == 2
    assert all(float(epoch["train_penalty"]) > 0 for epoch in history)  # the consistency term, counted with the penalties (no l2 here)


def test_with_consistency_each_visit_is_heard_again_in_a_room_through_the_same_augmentation():
    """``data.rooms.consistency``: a batch of visits is followed by the same visits, each in one of
    its rooms, mixed with the same partners at the same gains, masked and shifted alike: here a
    "room" adds 2 to a clip's log powers, so the second half is the first plus 2 everywhere."""
    from reglab.augment import BatchOps
    from reglab.recipe.schema import AugmentConfig
    from reglab.training.epoch import Member
    from reglab.training.losses import ViewConsistency

    torch.manual_seed(0)
    x = torch.randn(40, 1, 16, 30)
    labels = torch.arange(40) % 4
    clips = Samples(x, labels, list("abcd"), [str(i) for i in range(40)], (x + 2.0).unsqueeze(1).repeat(1, 3, 1, 1, 1), 0.0)
    config = AugmentConfig(mixtures={"p": 0.8, "max_sources": 3, "gain_db": 6.0}, specaugment={"freq_masks": 2, "freq_width": 4, "time_masks": 2, "time_width": 5},
                           random_gain_db=6.0, time_shift=0.3)  # fmt: skip
    augment = BatchOps(config, torch.full((4,), 10), (1, 16, 30), section("data", source="irmas", path="x"))
    index, extra = torch.randint(40, (16,)), torch.zeros(16, dtype=torch.bool)
    batch, targets = Member(clips, augment, SimpleNamespace(consistency=ViewConsistency(1.0, True)), None).batch(index, 4, extra)
    assert batch.shape == (32, 1, 16, 30) and torch.equal(targets[:16], targets[16:])
    assert targets[:16].sum(1).max() > 1  # mixed: the same partners in both halves
    assert torch.allclose(batch[16:] - batch[:16], torch.full_like(batch[:16], 2.0), atol=1e-4)
    once, once_targets = Member(clips, augment, SimpleNamespace(consistency=None), None).batch(index, 4, extra)
    assert once.shape == (16, 1, 16, 30) and once_targets.shape == (16, 4)
