"""Albumentations pipelines (2.x API): what the network sees in training and in testing.

Train: reflect-pad to 40x40 -> random 32x32 crop -> horizontal flip -> one 8x8 cutout hole
filled with the data-set mean -> normalise -> CHW float tensor. Test: normalise -> tensor.

Padding is reflect-101 (`cv2.BORDER_REFLECT_101`, numpy's "reflect", as in cifar10-fast):
albumentations 2.x pads with zeros unless told, which puts black borders into the crops.
The 2.x argument names (`num_holes_range`, `hole_*_range`, `fill`) are used on purpose: 2.x
ignores the 1.x names (`max_holes`, `fill_value`) and falls back to its defaults; `strict=True`
turns any unknown argument into an error.
"""
import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

PAD = 4     # pixels of padding on each side before the random crop
HOLE = 8    # side of the square cutout hole, pixels


def train_transforms(mean, std, cutout_p: float = 1.0, seed=None) -> A.Compose:
    fill = tuple(int(round(255 * m)) for m in mean)  # the mean colour in pixel units (0..255)
    transform = A.Compose([
        A.PadIfNeeded(32 + 2 * PAD, 32 + 2 * PAD, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(32, 32),
        A.HorizontalFlip(p=0.5),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(HOLE, HOLE),
                        hole_width_range=(HOLE, HOLE), fill=fill, p=cutout_p),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)
    reseed(transform, seed)
    return transform


def eval_transforms(mean, std) -> A.Compose:
    return A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()], strict=True)


def reseed(transform: A.Compose, seed) -> None:
    """Give every step of `transform` one shared random stream seeded with `seed`: an int, a tuple
    of ints such as (seed, epoch, index), or None for fresh entropy.

    `A.Compose(seed=...)` and `Compose.set_random_seed` (albumentations 2.0.x) hand each step its
    own generator with the same seed, so the first draws of crop, flip and cutout are correlated;
    one shared stream keeps them independent.
    """
    rng = np.random.default_rng(seed)
    transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
