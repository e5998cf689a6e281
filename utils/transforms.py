"""What the network sees: the albumentations train pipeline (2.x API) and the normalisation.

Train, per image: reflect-101 padding by PAD on each side (done once for the whole array, `pad`)
-> a random 32x32 crop (offsets 0..2*PAD each way) -> a horizontal flip half of the time -> one
square hole (8x8 by default), wholly inside the image, filled with the data-set mean colour. The pipeline
returns uint8 HWC images; `normalise` turns a batch of them into the network's float input on the
device (training, range test, evaluation and Grad-CAM alike). Test images are only normalised.

Padding is reflect-101 (`cv2.BORDER_REFLECT_101`, numpy's "reflect", as in cifar10-fast):
albumentations 2.x pads with zeros unless told. `strict=True` turns any argument albumentations
does not know (such as the 1.x names `max_holes`, `fill_value`, which 2.x ignores) into an error.
"""
import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.augmentations.dropout.functional import cutout  # noqa: E402

PAD = 4     # pixels of padding on each side before the random crop
SIZE = 32   # side of a CIFAR-10 image, pixels


def pad(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> (N, 40, 40, 3), reflect-101 padded by PAD on each side: what
    `A.PadIfNeeded(40, 40, border_mode=cv2.BORDER_REFLECT_101)` does to each image, done once."""
    return np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")


def pad_transform() -> A.PadIfNeeded:
    """The per-image albumentations form of `pad` (the reference it is tested against)."""
    return A.PadIfNeeded(SIZE + 2 * PAD, SIZE + 2 * PAD, border_mode=cv2.BORDER_REFLECT_101)


class OneHole(A.CoarseDropout):
    """CoarseDropout with exactly one `size` x `size` hole, wholly inside the image.

    The same transform as `A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(size, size),
    hole_width_range=(size, size), fill=fill)`, and the hole is filled by albumentations' own
    `cutout`; but the corner is drawn with two integer draws from the shared stream, where
    CoarseDropout's general parameter code costs about 60 us an image (more than crop and flip
    together) and its `apply` builds a random generator per image that a constant fill never uses.
    """

    def __init__(self, size: int, fill, p: float = 1.0):
        super().__init__(num_holes_range=(1, 1), hole_height_range=(size, size), hole_width_range=(size, size),
                         fill=fill, p=p)
        self.size = size

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        y = self.py_random.randint(0, height - self.size)  # both ends included: the hole stays inside
        x = self.py_random.randint(0, width - self.size)
        return {"holes": np.array([[x, y, x + self.size, y + self.size]])}

    def apply(self, img, holes, **params):
        return cutout(img, holes, self.fill, self.random_generator)


def train_transforms(mean, cutout_p: float = 1.0, seed=None, hole: int = 8) -> A.Compose:
    """The per-image train pipeline on padded uint8 images (see `pad`): crop, flip, a `hole` x `hole`
    cutout (none if 0) -> uint8 HWC."""
    fill = tuple(int(round(255 * m)) for m in mean)  # the mean colour in pixel units (0..255)
    transform = A.Compose([
        A.RandomCrop(SIZE, SIZE),
        A.HorizontalFlip(p=0.5),
        *([OneHole(hole, fill, p=cutout_p)] if hole else []),
    ], strict=True)
    reseed(transform, seed)
    return transform


def describe(transform: A.Compose) -> str:
    """What the train pipeline does, for figure titles: "pad 4 (reflect) + random crop 32, flip, 8x8 cutout"."""
    hole = next((t for t in transform.transforms if isinstance(t, OneHole)), None)
    cutout = "no cutout" if hole is None else f"{hole.size}x{hole.size} cutout" + (f" (p {hole.p:g})" if hole.p < 1 else "")
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


class Normaliser:
    """uint8 NHWC batches -> the network's input: float32 NCHW, (x - 255 mean) / (255 std) per channel.

    Bit for bit what albumentations' `A.Normalize(mean, std)` + `ToTensorV2` give each image: two
    float32 operations per pixel, checked here against A.Normalize applied to every value 0..255,
    so the test images score exactly what they scored through the per-image pipeline.
    """

    def __init__(self, mean, std):
        self.shift = torch.tensor(mean, dtype=torch.float32) * 255
        self.scale = 1 / (torch.tensor(std, dtype=torch.float32) * 255)
        self._on = {}  # device -> (shift, scale) there
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
        reference = A.Normalize(mean=mean, std=std, max_pixel_value=255.0, p=1.0)(image=ramp)["image"]
        ours = self(torch.from_numpy(ramp)[None])[0]  # (3, 1, 256)
        if not torch.equal(ours, torch.from_numpy(reference).permute(2, 0, 1)):
            raise RuntimeError("this albumentations normalises differently; utils/transforms.py Normaliser needs updating")

    def __call__(self, x: torch.Tensor, device="cpu", memory_format=torch.contiguous_format) -> torch.Tensor:
        """x: uint8 (N, H, W, 3) on any device -> float32 (N, 3, H, W) on `device`, in `memory_format`."""
        device = torch.device(device)
        if device not in self._on:
            self._on[device] = (self.shift.to(device), self.scale.to(device))
        shift, scale = self._on[device]
        x = x.to(device, non_blocking=True)
        x = (x.float() - shift) * scale                    # (N, H, W, 3) float32
        return x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)  # (N, 3, H, W)
