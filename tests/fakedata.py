"""Small generated CIFAR-10-shaped data: learnable (each class has its own colour and stripes)."""
from pathlib import Path

import numpy as np
from PIL import Image

from utils.data import CLASSES


def make_images(n_per_class: int, seed: int = 0):
    """(images uint8 (N, 32, 32, 3), labels int64 (N,)): class c is colour c plus stripes of period c + 2."""
    palette = np.random.default_rng(1234).integers(40, 216, size=(len(CLASSES), 3))  # the same in every split
    rng = np.random.default_rng(seed)
    images, labels = [], []
    rows = np.arange(32)[:, None, None]
    for label in range(len(CLASSES)):
        stripes = 40 * ((rows // (label + 2)) % 2)  # (32, 1, 1), class-specific period
        base = palette[label][None, None, :] + stripes
        noise = rng.normal(0, 20, size=(n_per_class, 32, 32, 3))
        images.append(np.clip(base[None] + noise, 0, 255).astype(np.uint8))
        labels += [label] * n_per_class
    return np.concatenate(images), np.array(labels, np.int64)


def make_image_folder(root, n_train: int = 12, n_test: int = 4, seed: int = 0) -> Path:
    """An image folder in the CIFAR10_ROOT layout: root/{train,test}/<class>/NNNN.jpg."""
    root = Path(root)
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = make_images(n, seed + offset)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i % n:04d}.jpg", quality=95)
    return root


def tiny_net(num_classes: int = 10):
    """A small, fast CNN with BatchNorm, for testing the loops rather than the architecture."""
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.MaxPool2d(4), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))


def loaders(n_train: int = 40, n_test: int = 10, batch_size: int = 50, seed: int = 0):
    """Train and test loaders (no augmentation, no workers) over generated images."""
    from utils.data import Split
    from utils.loaders import CIFARDataset, make_loader

    train, test = Split(*make_images(n_train, seed)), Split(*make_images(n_test, seed + 1))
    return (make_loader(CIFARDataset(train), batch_size, True, 0, seed=seed),
            make_loader(CIFARDataset(test), batch_size, False, 0))
