"""CIFAR-10 as uint8 arrays, from torchvision's download or from an image folder (decoded once, cached).

An image folder (`CIFAR10_ROOT`) holds train/<class>/*.jpg and test/<class>/*.jpg. Its 60,000
files are decoded once into uint8 arrays and cached under `cache_dir` (a file per split), keyed by
the folder's path and every file's name, size and modification time, so the next start loads one
file per split instead.

With a validation split (`S10_VALIDATION`), a fixed, class-balanced part of the training images is
held out and evaluated on in place of the test set, which is then never read.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from utils.config import S10Error, first_line, shown

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER_HINT = "CIFAR10_ROOT must hold train/<class>/ and test/<class>/ image folders"
VALIDATION_SEED = 10  # fixes which training images the validation split holds out, whatever the run's seed


@dataclass
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    labels: np.ndarray  # (N,) int64, indices into CLASSES

    def __len__(self):
        return len(self.labels)

    def take(self, keep) -> "Split":
        return Split(self.images[keep], self.labels[keep])

    def subset(self, n: int, seed: int, name: str = "subset") -> "Split":
        """`n` images drawn at random without replacement (seeded); 0 keeps them all."""
        if n > len(self):
            raise S10Error(f"{name}={n} asks for more images than the {len(self)} there are; "
                           "lower it or set 0 for all")
        if n in (0, len(self)):
            return self
        return self.take(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))

    def hold_out(self, n: int, seed: int = VALIDATION_SEED) -> tuple:
        """(rest, held): `n` images held out, the same number from every class, drawn by `seed`."""
        rng, per_class = np.random.default_rng(seed), n // len(CLASSES)
        counts = np.bincount(self.labels, minlength=len(CLASSES))
        if n % len(CLASSES) or not 0 < n < len(self) or per_class >= counts.min():
            raise S10Error(f"S10_VALIDATION={n} must be a multiple of {len(CLASSES)} (as many images from "
                           f"every class, fewer than its {counts.min()}); e.g. S10_VALIDATION=5000, "
                           "or 0 for none")
        held = np.sort(np.concatenate([rng.choice(np.flatnonzero(self.labels == c), per_class, replace=False)
                                       for c in range(len(CLASSES))]))
        return self.take(np.setdiff1d(np.arange(len(self)), held)), self.take(held)


def load_cifar10(root=None, download_dir="data", cache_dir="data/cache", splits=("train", "test")):
    """A Split for each of `splits`: from the image folder `root` if given, else torchvision's download."""
    if root:
        return load_image_folder(root, cache_dir, splits)
    from torchvision.datasets import CIFAR10

    try:
        sets = [CIFAR10(download_dir, train=split == "train", download=True) for split in splits]
    except Exception as exc:  # no network, a broken archive...
        raise S10Error(f"could not download CIFAR-10 into {download_dir}/ ({first_line(exc)}); set "
                       "CIFAR10_ROOT to a local copy as an image folder (train/<class>/*.jpg, "
                       "test/<class>/*.jpg), or for make DATA_ARCHIVE to its .tar.gz") from None
    return tuple(Split(np.asarray(s.data, np.uint8), np.asarray(s.targets, np.int64)) for s in sets)


def list_images(root: Path, split: str) -> list:
    """[(path, label), ...] of the image files in root/split/<class>/, by torchvision's folder listing."""
    folder = root / split
    if not folder.is_dir():
        raise S10Error(f"{folder} does not exist; {FOLDER_HINT} (or unset it to download CIFAR-10)")
    files = make_dataset(folder, {name: label for label, name in enumerate(CLASSES)}, IMG_EXTENSIONS,
                         allow_empty=True)
    empty = sorted(set(CLASSES) - {CLASSES[label] for _, label in files})
    if empty:
        raise S10Error(f"{folder} has no images of {', '.join(empty)}; {FOLDER_HINT}")
    return files


def load_image_folder(root, cache_dir="data/cache", splits=("train", "test")):
    """A Split for each of `splits`, from its cache file if that is current, else decoded. New cache
    files are written once every split has decoded, so a bad image leaves none behind."""
    root = Path(root).expanduser()
    listings = {split: list_images(root, split) for split in ("train", "test")}  # both checked
    caches = [cache_file(root, split, listings[split], Path(cache_dir)) for split in splits]
    loaded = [read_cache(cache) or decode(listings[split]) for cache, split in zip(caches, splits)]
    for cache, split in zip(caches, loaded):
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            with open(cache.with_suffix(".tmp"), "wb") as f:  # renamed when complete: a kill leaves no cache
                np.savez(f, images=split.images, labels=split.labels)
            os.replace(cache.with_suffix(".tmp"), cache)
    return tuple(loaded)


def cache_file(root: Path, split: str, files, cache_dir: Path) -> Path:
    """The cache of `split`, named by the folder's path and every file's name, size and time."""
    key = hashlib.sha1(f"{root.resolve()}|{split}\n".encode())
    for path, _ in files:
        stat = os.stat(path)
        key.update(f"{os.path.relpath(path, root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return cache_dir / f"cifar10-{split}-{key.hexdigest()[:16]}.npz"


def read_cache(cache: Path):
    """The Split in `cache`; None if there is none or it is unreadable (then it is decoded again)."""
    try:
        with np.load(cache) as z:
            return Split(z["images"], z["labels"])
    except Exception:
        cache.unlink(missing_ok=True)
        return None


def decode(files) -> Split:
    """The images as RGB uint8 (grayscale, palette and RGBA converted); one line for a bad file."""
    images = np.empty((len(files), 32, 32, 3), np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise S10Error(f"cannot read image {path} ({first_line(exc)}); replace or delete it") from None
        if pixels.shape != (32, 32, 3):
            raise S10Error(f"image {path} is {pixels.shape[1]}x{pixels.shape[0]}, not 32x32; "
                           "resize or delete it")
        images[i] = pixels
    return Split(images, np.array([label for _, label in files], np.int64))


@dataclass
class CIFAR10:
    train: Split
    test: Split        # the images evaluated on: the test set, or the validation split held out of train
    source: str        # where the images came from, for the record
    digest: str        # sha1 of the pixels and labels of both splits: which data a run saw
    eval_name: str = "test"  # what `test` holds: "test" or "validation"


def load_data(cfg) -> CIFAR10:
    """The train and evaluation splits that `cfg` asks for (source, validation split, subset sizes)."""
    source = f"image folder {shown(cfg.data_root)}" if cfg.data_root else "torchvision CIFAR-10"
    if cfg.validation:
        (full,) = load_cifar10(cfg.data_root, cfg.download_dir, cfg.cache_dir, splits=("train",))
        train, test = full.hold_out(cfg.validation)
        source += f", {len(train):,} training images with {len(test):,} held out for validation"
    else:
        train, test = load_cifar10(cfg.data_root, cfg.download_dir, cfg.cache_dir)
    train = train.subset(cfg.train_subset, cfg.seed, "S10_TRAIN_SUBSET")
    test = test.subset(cfg.test_subset, cfg.seed, "S10_TEST_SUBSET")
    return CIFAR10(train, test, source, digest(train, test), "validation" if cfg.validation else "test")


def digest(*splits: Split) -> str:
    """sha1 of the pixels and labels of `splits`."""
    h = hashlib.sha1()
    for split in splits:
        h.update(np.ascontiguousarray(split.images).data)
        h.update(np.ascontiguousarray(split.labels, np.int64).data)
    return h.hexdigest()
