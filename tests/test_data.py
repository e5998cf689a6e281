import pickle
import shutil
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image

import utils.data as data
from tests.fakedata import make_image_folder, make_images
from utils.config import Settings
from utils.config import S10Error
from utils.data import CLASSES, load_cifar10, load_data


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "cifar", n_train=3, n_test=2)


def test_image_folder_loads_as_uint8_arrays_and_is_cached(folder, tmp_path, monkeypatch):
    train, test = load_cifar10(folder, cache_dir=tmp_path / "cache")
    assert train.images.shape == (30, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (20, 32, 32, 3)
    assert sorted(set(train.labels.tolist())) == list(range(10))
    assert np.array_equal(train.images[0], np.asarray(Image.open(folder / "train/airplane/0000.jpg")))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # one per split

    monkeypatch.setattr(data, "decode", lambda files: pytest.fail("decoded again despite the cache"))
    again, _ = load_cifar10(folder, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.images, train.images)


def test_cache_notices_a_changed_file(folder, tmp_path):
    train, _ = load_cifar10(folder, cache_dir=tmp_path / "cache")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "train/airplane/0000.jpg")
    changed, _ = load_cifar10(folder, cache_dir=tmp_path / "cache")
    assert changed.images[0].max() < 10 < train.images[0].max()


def test_torchvision_source_loads(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    images, labels = make_images(2)
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    for name in CIFAR10.train_list + CIFAR10.test_list:
        with open(base / name[0], "wb") as f:
            pickle.dump({"data": chw, "labels": labels.tolist()}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CLASSES)}, f)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)  # no md5s
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive",
                        lambda *args, **kwargs: pytest.fail("tried to download"))
    train, test = load_cifar10(None, download_dir=tmp_path)
    assert train.images.shape == (5 * 20, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    assert np.array_equal(train.images[:20], images) and np.array_equal(test.labels, labels)


def test_offline_download_says_to_set_cifar10_root(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def no_network(self):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(CIFAR10, "download", no_network)
    with pytest.raises(S10Error, match="could not download CIFAR-10 .*name resolution.*set CIFAR10_ROOT"):
        load_cifar10(None, download_dir=tmp_path)


def break_root(root):
    shutil.rmtree(root)


def no_train(root):
    shutil.rmtree(root / "train")


def no_test(root):
    shutil.rmtree(root / "test")


def missing_class(root):
    shutil.rmtree(root / "train" / "cat")


def empty_class(root):
    for f in (root / "train" / "dog").iterdir():
        f.unlink()


def not_an_image(root):
    (root / "train" / "frog" / "0000.png").write_text("hello")


def corrupt_jpeg(root):
    path = root / "test" / "ship" / "0000.jpg"
    path.write_bytes(path.read_bytes()[:200])


def garbage_jpeg(root):
    (root / "train" / "bird" / "0000.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def wrong_size(root):
    Image.new("RGB", (64, 48)).save(root / "train" / "deer" / "0000.jpg")


@pytest.mark.parametrize("damage, says", [
    (break_root, "does not exist"),
    (no_train, "train does not exist"),
    (no_test, "test does not exist"),
    (missing_class, "has no images of cat"),
    (empty_class, "has no images of dog"),
    (not_an_image, "cannot read image"),
    (corrupt_jpeg, "cannot read image"),
    (garbage_jpeg, "cannot read image"),
    (wrong_size, "not 32x32"),
])
def test_bad_folders_stop_with_one_clear_line(folder, tmp_path, damage, says):
    damage(folder)
    with pytest.raises(S10Error) as err:
        load_cifar10(folder, cache_dir=tmp_path / "cache")
    assert says in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # no partial output


def test_other_files_and_folders_are_left_alone(folder, tmp_path):
    before, _ = load_cifar10(folder, cache_dir=tmp_path / "a")
    (folder / "train" / "frog" / "notes.txt").write_text("hello")
    (folder / "test" / "unicorn").mkdir()
    after, _ = load_cifar10(folder, cache_dir=tmp_path / "b")
    assert (after.images == before.images).all() and (after.labels == before.labels).all()


def test_grayscale_images_are_converted_to_rgb(folder, tmp_path):
    Image.new("L", (32, 32), 77).save(folder / "train" / "horse" / "0000.png")
    train, _ = load_cifar10(folder, cache_dir=tmp_path / "cache")
    assert train.images.shape[-1] == 3 and (train.images == 77).all(axis=(1, 2, 3)).sum() == 1


def test_subsets_are_seeded_and_bounded(folder, tmp_path):
    env = {"CIFAR10_ROOT": str(folder), "S10_CACHE_DIR": str(tmp_path / "c"), "S10_TRAIN_SUBSET": "7"}
    a, b = load_data(Settings.from_env(env)), load_data(Settings.from_env(env))
    assert len(a.train) == 7 and len(a.test) == 20
    assert np.array_equal(a.train.labels, b.train.labels) and np.array_equal(a.train.images, b.train.images)
    with pytest.raises(S10Error, match="S10_TRAIN_SUBSET=31"):
        load_data(Settings.from_env({**env, "S10_TRAIN_SUBSET": "31"}))


def test_the_validation_split_is_fixed_class_balanced_and_disjoint_from_training(tmp_path):
    images, labels = make_images(30)  # 300 images, 30 per class
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.divmod(np.arange(len(images)), 256)  # an id in two pixels
    full = data.Split(images, labels)
    rest, held = full.hold_out(100)
    assert len(held) == 100 and len(rest) == 200
    assert np.bincount(held.labels, minlength=10).tolist() == [10] * 10
    ids = lambda split: set((256 * split.images[:, 0, 0, 0].astype(int) + split.images[:, 0, 0, 1]).tolist())
    assert not ids(rest) & ids(held) and ids(rest) | ids(held) == ids(full)
    again_rest, again_held = full.hold_out(100)
    assert np.array_equal(again_held.images, held.images) and np.array_equal(again_rest.labels, rest.labels)
    other = full.hold_out(100, seed=data.VALIDATION_SEED + 1)[1]
    assert ids(other) != ids(held)  # the seed, a constant, is what fixes it
    with pytest.raises(S10Error, match="S10_VALIDATION=105 must be a multiple of 10"):
        full.hold_out(105)


def test_with_a_validation_split_the_run_evaluates_on_it_and_never_reads_the_test_set(folder, tmp_path,
                                                                                      monkeypatch):
    """The test images are made unreadable: loading with S10_VALIDATION must not notice."""
    for path in (folder / "test").rglob("*.jpg"):
        path.write_bytes(b"not a jpeg")
    env = {"CIFAR10_ROOT": str(folder), "S10_CACHE_DIR": str(tmp_path / "c"), "S10_VALIDATION": "10",
           "S10_SEED": "3"}
    seen = load_data(Settings.from_env(env))
    assert seen.eval_name == "validation" and len(seen.test) == 10 and len(seen.train) == 20
    assert np.bincount(seen.test.labels, minlength=10).tolist() == [1] * 10
    assert "10 held out for validation" in seen.source
    # the split does not move with the run's seed, so runs of several seeds are compared on one split
    other_seed = load_data(Settings.from_env({**env, "S10_SEED": "4"}))
    assert np.array_equal(other_seed.test.images, seen.test.images)
    with pytest.raises(S10Error, match="cannot read image"):
        load_data(Settings.from_env({**env, "S10_VALIDATION": "0"}))
