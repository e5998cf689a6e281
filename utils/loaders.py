"""Batches for training and testing: a dataset that augments each image from its own random stream,
the epoch-seeded shuffle, and the loaders, whose batches are (normalised float images, labels)."""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.transforms import PAD, normalise, pad, reseed, train_transforms


class CIFARDataset(Dataset):
    """uint8 images as (uint8 images (B, 32, 32, 3), labels (B,)), a batch at a time
    (`__getitems__`): augmented by `transform` (the train pipeline, on images padded once here by
    PAD), or as stored without one (testing).

    Keys are image indices, or (epoch, index) pairs from EpochShuffle. Image i of epoch e is drawn
    from its own random stream, seeded by (seed, e, i): the crops, flips and holes of an epoch depend
    neither on the number of loader workers nor on what ran before, so a run resumed at epoch e
    sees what a run that never stopped saw, and `dataset[(e, i)]` is that very image.
    """

    def __init__(self, split, transform=None, seed=0):
        self.transform, self.seed, self.labels = transform, seed, split.labels
        self.images = split.images if transform is None else pad(split.images)

    def __len__(self):
        return len(self.labels)

    def __getitems__(self, keys):
        keys = [key if isinstance(key, tuple) else (0, key) for key in keys]
        indices = np.array([i for _, i in keys], np.int64)
        labels = torch.from_numpy(self.labels[indices])
        if self.transform is None:
            return torch.from_numpy(self.images[indices]), labels
        images = []
        for epoch, i in keys:
            reseed(self.transform, (self.seed, epoch, i))
            images.append(self.transform(image=self.images[i])["image"])
        return torch.from_numpy(np.stack(images)), labels

    def __getitem__(self, key):
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
    """The loaders' collate function: a whole batch from `__getitems__`, its images normalised."""
    return normalise(batch[0]), batch[1]


def resolve_workers(cfg, device_type: str) -> int:
    """The loader worker count of `cfg`; -1: up to 8 for a GPU, else up to 2, leaving a core to the model."""
    cores = os.cpu_count() or 1
    return cfg.workers if cfg.workers >= 0 else min(8, cores) if device_type == "cuda" else min(2, cores - 1)


def make_loader(dataset, batch_size: int, train: bool, workers: int, device_type: str = "cpu", seed: int = 0):
    """Training: shuffled by EpochShuffle(seed); testing: in order. Workers live across epochs and
    pin memory for a GPU."""
    sampler = EpochShuffle(len(dataset), seed) if train else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=as_batch, pin_memory=device_type == "cuda", persistent_workers=workers > 0)


def make_loaders(data, cfg, device_type: str):
    """(train_loader, test_loader): augmented and shuffled for training, plain for testing."""
    workers = resolve_workers(cfg, device_type)
    train_set = CIFARDataset(data.train, train_transforms(cfg.cutout_p, hole=cfg.cutout_size), seed=cfg.seed)
    return (make_loader(train_set, cfg.batch_size, True, workers, device_type, cfg.seed),
            make_loader(CIFARDataset(data.test), cfg.batch_size, False, workers, device_type))
