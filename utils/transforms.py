"""What the network sees: the albumentations train pipeline (2.x API) and the normalisation.

Train, per image: reflect-101 padding by PAD on each side (done once for the whole array, `pad`)
-> a random 32x32 crop (offsets 0..2*PAD each way) -> a horizontal flip half of the time -> one
square hole (8x8 by default), wholly inside the image, filled with the data-set mean colour. The
pipeline returns uint8 HWC images; `normalise` turns a batch of them into the network's input.
Test images are only normalised.

Padding is reflect-101 (`cv2.BORDER_REFLECT_101`, numpy's "reflect", as in cifar10-fast):
albumentations 2.x pads with zeros unless told. `strict=True` turns any argument albumentations
does not know (such as the 1.x names `max_holes`, `fill_value`, which 2.x ignores) into an error.
"""
import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

PAD = 4     # pixels of padding on each side before the random crop
SIZE = 32   # side of a CIFAR-10 image, pixels
MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the CIFAR-10 training images, 0..1
STD = (0.2470, 0.2435, 0.2616)   # per-channel standard deviation, 0..1


def pad(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> (N, 40, 40, 3), reflect-101 padded by PAD on each side: what
    `A.PadIfNeeded(40, 40, border_mode=cv2.BORDER_REFLECT_101)` does to each image, done once."""
    return np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")


def train_transforms(cutout_p: float = 1.0, seed=None, hole: int = 8) -> A.Compose:
    """The per-image train pipeline on padded uint8 images (see `pad`): crop, flip, a `hole` x `hole`
    cutout (none if 0) -> uint8 HWC."""
    fill = tuple(int(round(255 * m)) for m in MEAN)  # the mean colour in pixel units (0..255)
    one_hole = A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(hole, hole),
                               hole_width_range=(hole, hole), fill=fill, p=cutout_p)
    transform = A.Compose([A.RandomCrop(SIZE, SIZE), A.HorizontalFlip(p=0.5), *([one_hole] if hole else [])],
                          strict=True)
    reseed(transform, seed)
    return transform


def describe(transform: A.Compose) -> str:
    """What the train pipeline does: "pad 4 (reflect) + random crop 32, flip, 8x8 cutout"."""
    hole = next((t for t in transform.transforms if isinstance(t, A.CoarseDropout)), None)
    side = hole.hole_height_range[0] if hole else 0
    cutout = f"{side}x{side} cutout" + (f" (p {hole.p:g})" if hole.p < 1 else "") if hole else "no cutout"
    return f"pad {PAD} (reflect) + random crop {SIZE}, flip, {cutout}"


def reseed(transform: A.Compose, seed) -> None:
    """Give every step of `transform` one shared random stream seeded with `seed`: an int, a tuple
    of ints such as (seed, epoch, batch), or None for fresh entropy.

    `A.Compose(seed=...)` and `Compose.set_random_seed` (albumentations 2.0.x) hand each step its
    own generator with the same seed, so the first draws of crop, flip and cutout are correlated;
    one shared stream keeps them independent.
    """
    rng = np.random.default_rng(seed)
    transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))


SHIFT, SCALE = torch.tensor(MEAN) * 255, 1 / (torch.tensor(STD) * 255)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W), (x - 255 mean) / (255 std) per channel: bit for bit
    what albumentations' `A.Normalize(MEAN, STD)` + `ToTensorV2` give each image (tested). The result
    is a view in channels_last memory order (`.contiguous()` makes it NCHW)."""
    return ((images.float() - SHIFT) * SCALE).permute(0, 3, 1, 2)
