"""CIFAR-10 as uint8 arrays, from torchvision's download or from an image folder, and its loaders.

An image folder (`CIFAR10_ROOT`) holds train/<class>/*.jpg and test/<class>/*.jpg. Its 60,000
files are decoded once into uint8 arrays and cached under `cache_dir` (a file per split), keyed by
the folder's path and every file's name, size and modification time, so the next start loads one
file per split instead.

With a validation split (`S10_VALIDATION`), a fixed, class-balanced part of the training images is
held out and evaluated on in place of the test set, which is then never read.
"""
import hashlib
import io
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from utils.config import first_line
from utils.transforms import PAD, SIZE, Normaliser, pad, reseed, train_transforms

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the CIFAR-10 training images, 0..1
STD = (0.2470, 0.2435, 0.2616)   # per-channel standard deviation, 0..1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FOLDER_HINT = "CIFAR10_ROOT must hold train/<class>/ and test/<class>/ image folders"
VALIDATION_SEED = 10  # fixes which training images the validation split holds out, whatever the run's seed


class DataError(RuntimeError):
    """The data cannot be loaded as given; the message says what to fix."""


@dataclass
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    labels: np.ndarray  # (N,) int64, indices into CLASSES

    def __len__(self):
        return len(self.labels)

    def subset(self, n: int, seed: int, name: str = "subset") -> "Split":
        """`n` images drawn at random without replacement (seeded); 0 keeps them all."""
        if n == 0 or n == len(self):
            return self
        if n > len(self):
            raise DataError(f"{name}={n} asks for more images than the {len(self)} there are; lower it or set 0 for all")
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.images[keep], self.labels[keep])

    def hold_out(self, n: int, seed: int = VALIDATION_SEED) -> tuple:
        """(rest, held): `n` images held out, the same number from every class, drawn by `seed`."""
        classes = len(CLASSES)
        if n % classes or not 0 < n < len(self):
            raise DataError(f"S10_VALIDATION={n} must be a multiple of {classes} (the same number of images "
                            f"from every class) below {len(self)}; e.g. S10_VALIDATION=5000, or 0 for none")
        rng, held = np.random.default_rng(seed), []
        for label in range(classes):
            members = np.flatnonzero(self.labels == label)
            if len(members) <= n // classes:
                raise DataError(f"S10_VALIDATION={n} asks for {n // classes} images of class {CLASSES[label]}, "
                                f"which has {len(members)}; lower it")
            held.append(rng.choice(members, n // classes, replace=False))
        held = np.sort(np.concatenate(held))
        rest = np.setdiff1d(np.arange(len(self)), held)
        return Split(self.images[rest], self.labels[rest]), Split(self.images[held], self.labels[held])


def load_cifar10(root=None, download_dir="data", cache_dir="data/cache", splits=("train", "test")):
    """A Split for each of `splits`: from the image folder `root` if given, else torchvision's download."""
    if root:
        return load_image_folder(root, cache_dir, splits)
    return load_torchvision(download_dir, splits)


def load_torchvision(download_dir, splits=("train", "test")):
    from torchvision.datasets import CIFAR10

    try:
        sets = [CIFAR10(download_dir, train=split == "train", download=True) for split in splits]
    except Exception as exc:  # URLError, socket errors, a broken archive...
        offline = isinstance(exc, (URLError, ConnectionError, TimeoutError, socket.gaierror))
        raise DataError(
            f"could not download CIFAR-10 into {download_dir}/: "
            f"{'no network was reached' if offline else 'the download failed'} ({first_line(exc)}); "
            f"set CIFAR10_ROOT to a local copy as an image folder (train/<class>/*.jpg, test/<class>/*.jpg)") from None
    return tuple(Split(np.asarray(s.data, np.uint8), np.asarray(s.targets, np.int64)) for s in sets)


def list_image_folder(root):
    """{"train": [(path, label), ...], "test": [...]}, after checking the layout."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; {FOLDER_HINT} (or unset it to download CIFAR-10)")
    listing = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{root} has no {split}/ folder; {FOLDER_HINT}")
        found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        missing = [c for c in CLASSES if c not in found]
        extra = [c for c in found if c not in CLASSES]
        if missing:
            raise DataError(f"{folder} lacks the class folder(s) {', '.join(missing)}; {FOLDER_HINT}")
        if extra:
            raise DataError(f"{folder} has folder(s) {', '.join(extra)} that are not CIFAR-10 classes; "
                            f"move them out (the classes are {', '.join(CLASSES)})")
        listing[split] = []
        for label, name in enumerate(CLASSES):
            files = sorted(p for p in (folder / name).iterdir() if not p.name.startswith("."))
            if not files:
                raise DataError(f"class folder {folder / name} is empty; put its images there")
            for path in files:
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(f"{path} is not an image file; move it out of the data folder")
                listing[split].append((path, label))
    return listing


def load_image_folder(root, cache_dir="data/cache", splits=("train", "test")):
    """A Split for each of `splits`, from its cache file if that is current, else decoded. New cache
    files are written once every split has decoded, so a bad image leaves none behind."""
    root = Path(root).expanduser()
    listing = list_image_folder(root)
    caches = [_cache_file(root, split, listing[split], Path(cache_dir)) for split in splits]
    loaded = [_read_cache(cache) for cache in caches]
    loaded = [found or _decode(listing[split]) for found, split in zip(loaded, splits)]
    for cache, split in zip(caches, loaded):
        if not cache.exists():
            _save_atomic(cache, images=split.images, labels=split.labels)
    return tuple(loaded)


def _cache_file(root: Path, split: str, files, cache_dir: Path) -> Path:
    """The cache of `split`, named by the folder's path and every file's name, size and time."""
    key = hashlib.sha1(f"{root.resolve()}|{split}\n".encode())
    for path, _ in files:
        stat = path.stat()
        key.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return cache_dir / f"cifar10-{split}-{key.hexdigest()[:16]}.npz"


def _read_cache(cache: Path):
    if cache.exists():
        try:
            with np.load(cache) as z:
                return Split(z["images"], z["labels"])
        except Exception as exc:
            warnings.warn(f"ignoring unreadable cache {cache} ({exc}); decoding the images again")
            cache.unlink(missing_ok=True)
    return None


def _decode(files) -> Split:
    images = np.empty((len(files), 32, 32, 3), np.uint8)
    converted = 0
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode != "RGB":
                    converted += 1
                    im = im.convert("RGB")
                pixels = np.asarray(im)
        except Exception as exc:
            raise DataError(f"cannot read image {path} ({exc}); replace or delete it") from None
        if pixels.shape != (32, 32, 3):
            raise DataError(f"image {path} is {pixels.shape[1]}x{pixels.shape[0]}, not 32x32; resize or delete it")
        images[i] = pixels
    if converted:
        warnings.warn(f"converted {converted} grayscale/palette/RGBA image(s) to RGB", stacklevel=2)
    return Split(images, np.array([label for _, label in files], np.int64))


def _save_atomic(path: Path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_bytes(buffer.getbuffer())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class CIFARDataset(Dataset):
    """uint8 images, fetched a batch at a time (`__getitems__`) as (uint8 images (B, 32, 32, 3),
    labels (B,)): augmented by `transform` (the train pipeline, on images padded once here by PAD),
    or as stored without one (testing). Normalisation happens on the device (`normalise`).

    With a `seed`, a batch is augmented from its own random stream, seeded by (seed, epoch, the
    index of its first image); the shuffle hands the epoch over with each index (`EpochShuffle`), so
    the crops, flips and holes of an epoch depend neither on the number of loader workers nor on
    what ran before, and a run resumed at epoch e sees what a run that never stopped saw. Within a
    batch the images draw one after another from that stream. Without a seed the pipeline's own
    stream is used.
    """

    def __init__(self, split: Split, transform=None, seed=None):
        self.transform, self.seed, self.labels = transform, seed, split.labels
        self.images = split.images if transform is None else pad(split.images)

    def __len__(self):
        return len(self.labels)

    def __getitems__(self, keys):
        """`keys`: image indices, or (epoch, index) pairs from EpochShuffle."""
        epoch, indices = 0, keys
        if len(keys) and isinstance(keys[0], tuple):
            epoch, indices = keys[0][0], [i for _, i in keys]
        indices = np.asarray(indices, np.int64)
        labels = torch.from_numpy(self.labels[indices])
        if self.transform is None:
            return torch.from_numpy(self.images[indices]), labels
        if self.seed is not None:
            reseed(self.transform, (self.seed, epoch, int(indices[0])))
        out = np.empty((len(indices), SIZE, SIZE, 3), np.uint8)
        for k, i in enumerate(indices):
            out[k] = self.transform(image=self.images[i])["image"]
        return torch.from_numpy(out), labels

    def __getitem__(self, key):
        """One image: `key` an index or an (epoch, index) pair -> (uint8 (32, 32, 3), label)."""
        x, y = self.__getitems__([key])
        return x[0], y[0]

    def original(self, i: int) -> np.ndarray:
        """Image i as stored (without the padding added for training)."""
        return self.images[i] if self.transform is None else self.images[i, PAD:-PAD, PAD:-PAD]


class EpochShuffle(Sampler):
    """A new random order every epoch, drawn from (seed, epoch) alone (`set_epoch`), like
    DistributedSampler: an epoch's order does not depend on how many epochs ran in this process.
    It yields (epoch, index) pairs, so the dataset in a worker knows the epoch without being told,
    and training workers can live across epochs."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        return iter([(self.epoch, int(i)) for i in order])


def as_batch(batch):
    """The loader's collate function: CIFARDataset.__getitems__ returns whole batches already."""
    return batch


def seed_worker(worker_id: int) -> None:
    """Reseed an unseeded dataset's augmentations in a worker from torch's per-worker seed.

    Forked workers inherit one copy of the pipeline's random state, so without this every worker
    would draw the same crops, flips and holes. (A seeded CIFARDataset reseeds per batch instead.)
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    transform = get_worker_info().dataset.transform
    if transform is not None:
        reseed(transform, seed)


def auto_workers(device_type: str) -> int:
    cores = os.cpu_count() or 1
    if device_type == "cuda":
        return min(8, cores)
    return min(2, cores - 1)  # leave the cores to the model on a CPU


def resolve_workers(cfg, device_type: str) -> int:
    """The loader worker count of `cfg` (-1: chosen from the device and the cores)."""
    return auto_workers(device_type) if cfg.workers < 0 else cfg.workers


def make_loader(dataset, batch_size: int, train: bool, workers: int, device_type: str = "cpu", seed: int = 0,
                persistent: bool = True):
    """Training: shuffled by EpochShuffle(seed); testing: in order. Batches of uint8 images (see
    CIFARDataset); workers persist across epochs (`persistent`) and pin memory for a GPU."""
    return DataLoader(
        dataset, batch_size=batch_size, sampler=EpochShuffle(len(dataset), seed) if train else None,
        num_workers=workers, pin_memory=device_type == "cuda", collate_fn=as_batch,
        persistent_workers=persistent and workers > 0,
        worker_init_fn=seed_worker if workers > 0 else None)


def as_trained(loader, epoch: int, i: int) -> np.ndarray:
    """Training image i as `loader` draws it in `epoch`: uint8 (32, 32, 3). Its whole batch is
    fetched again (the draws of a batch come from one stream), and image i taken out of it."""
    sampler = loader.sampler
    kept, sampler.epoch = sampler.epoch, epoch
    try:
        keys = list(sampler)
    finally:
        sampler.epoch = kept
    start = [index for _, index in keys].index(i) // loader.batch_size * loader.batch_size
    batch = keys[start:start + loader.batch_size]
    images, _ = loader.dataset.__getitems__(batch)
    return images[[index for _, index in batch].index(i)].numpy()


normalise = Normaliser(MEAN, STD)  # uint8 NHWC batch -> the network's input on a device


def to_device(x, y, device, memory_format=torch.contiguous_format):
    """A loader's batch as the network takes it: images normalised into float32 NCHW (in
    `memory_format`) and labels, both on `device`. Training, the LR range test, evaluation and
    Grad-CAM all go through here."""
    return normalise(x, device, memory_format), y.to(device, non_blocking=True)


@dataclass
class CIFAR10:
    train: Split
    test: Split        # the images evaluated on: the test set, or the validation split held out of train
    source: str        # where the images came from, for the record
    digest: str        # sha1 of the pixels and labels of both splits: which data a run saw
    eval_name: str = "test"  # what `test` holds: "test" or "validation"


def load_data(cfg) -> CIFAR10:
    """The train and evaluation splits that `cfg` asks for (source, validation split, subset sizes).

    With `cfg.validation` > 0 that many training images (class-balanced, fixed by VALIDATION_SEED)
    are held out and returned as the evaluation split; the test set is not even read."""
    source = f"image folder {cfg.data_root}" if cfg.data_root else "torchvision CIFAR-10"
    if cfg.validation:
        (full,) = load_cifar10(cfg.data_root, cfg.download_dir, cfg.cache_dir, splits=("train",))
        train, test = full.hold_out(cfg.validation)
        source += f", {len(train):,} training images with {len(test):,} held out for validation"
    else:
        train, test = load_cifar10(cfg.data_root, cfg.download_dir, cfg.cache_dir)
    eval_name = "validation" if cfg.validation else "test"
    train = train.subset(cfg.train_subset, cfg.seed, "S10_TRAIN_SUBSET")
    test = test.subset(cfg.test_subset, cfg.seed, "S10_TEST_SUBSET")
    return CIFAR10(train, test, source, digest(train, test), eval_name)


def digest(*splits: Split) -> str:
    h = hashlib.sha1()
    for split in splits:
        h.update(np.ascontiguousarray(split.images).data)
        h.update(np.ascontiguousarray(split.labels, np.int64).data)
    return h.hexdigest()


def make_loaders(data: CIFAR10, cfg, device_type: str):
    """(train_loader, test_loader): augmented and shuffled for training, plain for testing."""
    workers = resolve_workers(cfg, device_type)
    train_set = CIFARDataset(data.train, train_transforms(MEAN, cfg.cutout_p), seed=cfg.seed)
    test_set = CIFARDataset(data.test)
    return (make_loader(train_set, cfg.batch_size, True, workers, device_type, cfg.seed),
            make_loader(test_set, cfg.batch_size, False, workers, device_type))
