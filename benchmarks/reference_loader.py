"""The training loader as it was up to commit 6a5f03d (the one the committed runs in runs/ used),
kept as the benchmark's reference: per image, a reseed from (seed, epoch, index), then reflect
padding, crop, flip, CoarseDropout, Normalize and ToTensorV2 in one albumentations Compose, and the
default collate into a float NCHW batch."""
import cv2
import albumentations as A
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import Dataset

from utils.transforms import PAD, reseed

HOLE = 8


def reference_transforms(mean, std, cutout_p: float = 1.0) -> A.Compose:
    fill = tuple(int(round(255 * m)) for m in mean)
    return A.Compose([
        A.PadIfNeeded(32 + 2 * PAD, 32 + 2 * PAD, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(32, 32),
        A.HorizontalFlip(p=0.5),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(HOLE, HOLE),
                        hole_width_range=(HOLE, HOLE), fill=fill, p=cutout_p),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


class ReferenceDataset(Dataset):
    """Image i of epoch e augmented from its own stream seeded by (seed, e, i): (CHW float, label)."""

    def __init__(self, split, transform, seed=0, epoch=1):
        self.images, self.labels, self.transform, self.seed, self.epoch = split.images, split.labels, transform, seed, epoch

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        reseed(self.transform, (self.seed, self.epoch, int(i)))
        return self.transform(image=self.images[i])["image"], int(self.labels[i])


def reference_loader(split, mean, std, batch_size, workers=0):
    return torch.utils.data.DataLoader(ReferenceDataset(split, reference_transforms(mean, std)),
                                       batch_size=batch_size, shuffle=True, num_workers=workers)
