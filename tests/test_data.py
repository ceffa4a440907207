import pickle

import pytest
import torch

from reglab import data as sources
from reglab.data.inspect import summarize
from reglab.data.split import stratified_split
from reglab.errors import UserError
from reglab.recipe import DataConfig

from .conftest import SHARED_DATA


def test_image_folder_decodes_once_into_uint8_and_resizes(image_tree):
    data = sources.load(DataConfig(source="image_folder", path=str(image_tree), image_size=8))
    assert data.x.dtype == torch.uint8 and data.x.shape == (26, 3, 8, 8)
    assert data.classes == ["blue", "green", "red"]
    assert data.class_counts().tolist() == [6, 8, 12]
    assert data.ids[0] == "blue/blue_000"


def test_decoded_images_are_cached_and_decoded_again_when_a_file_changes(image_tree, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from reglab.data import images

    config = DataConfig(source="image_folder", path=str(image_tree), image_size=8, cache_dir=str(tmp_path / "cache"))
    first = sources.load(config)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    with monkeypatch.context() as patched:
        patched.setattr(images, "_decode_all", lambda *_: pytest.fail("decoded again"))
        assert torch.equal(sources.load(config).x, first.x)  # the second run reads the cache
    Image.new("RGB", (10, 10), (0, 0, 0)).save(image_tree / "red" / "red_000.png")  # a file replaced: decoded again
    changed = sources.load(config)
    index = changed.ids.index("red/red_000")
    assert changed.x[index].max() == 0 and first.x[index].max() > 0
    assert sources.load(config.model_copy(update={"image_size": 4})).x.shape[-1] == 4  # another size: its own entry
    for entry in (tmp_path / "cache").glob("*.pt"):  # an entry of the right name holding something else
        torch.save({"x": torch.zeros(3, 3, 8, 8, dtype=torch.uint8)}, entry)
    assert torch.equal(sources.load(config).x, changed.x)
    assert "does not hold these images; decoding them again" in capsys.readouterr().err


def test_class_subset_and_grey_channels(image_tree):
    data = sources.load(DataConfig(source="image_folder", path=str(image_tree), classes=["red", "blue"], channels=1))
    assert data.classes == ["blue", "red"] and data.x.shape[1] == 1
    assert data.class_counts().tolist() == [6, 12]
    with pytest.raises(UserError, match="no class 'gren'.*did you mean 'green'"):
        sources.load(DataConfig(source="image_folder", path=str(image_tree), classes=["gren"]))


def test_corrupt_image_is_named(image_tree):
    bad = image_tree / "red" / "red_999.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="red_999.png: cannot decode image"):
        sources.load(DataConfig(source="image_folder", path=str(image_tree)))


def test_mixed_sizes_need_image_size(image_tree):
    from PIL import Image

    Image.new("RGB", (20, 10)).save(image_tree / "red" / "red_wide.png")
    with pytest.raises(UserError, match="set data.image_size"):
        sources.load(DataConfig(source="image_folder", path=str(image_tree)))
    assert sources.load(DataConfig(source="image_folder", path=str(image_tree), image_size=12)).x.shape[-1] == 12


def test_test_folder_with_answer_key(test_folder):
    folder, labels = test_folder
    config = DataConfig(source="test_folder", path=str(folder), labels=str(labels))
    data = sources.load(config, "test", classes=["blue", "green", "red"])
    assert data.ids[:3] == ["0000", "0001", "0002"]
    assert data.y[:3].tolist() == [2, 1, 0]
    unlabelled = sources.load(DataConfig(source="test_folder", path=str(folder)), "test", classes=["blue", "green", "red"])
    assert unlabelled.y is None and len(unlabelled) == 9


def test_cifar_batches(cifar_tree):
    config = DataConfig(source="cifar", path=str(cifar_tree))
    train = sources.load(config, "train")
    test = sources.load(config, "test")
    assert train.x.shape == (21, 3, 32, 32) and test.x.shape == (6, 3, 32, 32)
    assert train.classes == ["airplane", "automobile", "bird"]
    # the pixel layout is CIFAR's: 1024 red, then green, then blue values, row-major
    with (cifar_tree / "data_batch_1").open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")[b"data"]
    assert torch.equal(train.x[0, 1].flatten(), torch.from_numpy(raw[0, 1024:2048]))
    kept = sources.load(config.model_copy(update={"classes": ["bird", "airplane"], "image_size": 16}), "train")
    assert kept.classes == ["airplane", "bird"] and kept.x.shape[1:] == (3, 16, 16)
    assert kept.class_counts().tolist() == [7, 7]


def test_tiny_imagenet_layout(tiny_imagenet_tree):
    config = DataConfig(source="tiny_imagenet", path=str(tiny_imagenet_tree), classes=2)
    train = sources.load(config, "train")
    val = sources.load(config, "test")
    assert train.classes == ["n01443537", "n01629819"] and len(train) == 8
    assert len(val) == 4 and val.class_counts().tolist() == [2, 2]


def test_digits_are_built_in():
    data = sources.load(DataConfig(source="digits"))
    assert data.x.shape == (1797, 1, 8, 8) and len(data.classes) == 10
    assert int(data.x.max()) == 255


def test_stratified_split_keeps_class_proportions():
    data = sources.load(DataConfig(source="digits"))
    train, val = stratified_split(data, 0.2, seed=0)
    assert len(val) == 360 and len(train) + len(val) == len(data)
    share = val.class_counts().float() / data.class_counts().float()
    assert torch.all((share - 0.2).abs() < 0.03)
    assert not set(train.ids) & set(val.ids)
    again, _ = stratified_split(data, 0.2, seed=0)
    other, _ = stratified_split(data, 0.2, seed=1)
    assert again.ids == train.ids and other.ids != train.ids


def test_missing_path_is_named(tmp_path):
    with pytest.raises(UserError, match="nowhere: image folder not found"):
        sources.load(DataConfig(source="image_folder", path=str(tmp_path / "nowhere")))


def test_inspect_shared_typefaces():
    summary = summarize(SHARED_DATA / "typefaces" / "train")
    assert summary.layout == "image_folder" and len(summary.counts) == 19
    assert summary.counts["caladea"] == 280 and summary.counts["dejavu_serif"] == 10
    assert summary.imbalance == 28.0
    assert dict(summary.sizes) == {(64, 64): summary.total}
