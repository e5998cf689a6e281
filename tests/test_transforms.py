"""The train pipeline draws exactly the assignment's augmentations (reflect-101 pad 4 + a uniform
random 32x32 crop, a flip half of the time, one 8x8 hole of the mean colour wholly inside), the
normalisation is albumentations' to the bit, and the draws depend on (seed, epoch, image) only."""
import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2

from tests.fakedata import make_images
from utils.data import Split
from utils.loaders import CIFARDataset, EpochShuffle, make_loader
from utils.transforms import MEAN, PAD, STD, describe, normalise, pad, train_transforms

HOLE = 8

MEAN_PX = np.round(255 * np.array(MEAN))
CHI2_8DF_P001 = 26.12  # chi-square with 8 degrees of freedom: exceeded with probability 0.001


def coordinate_image() -> np.ndarray:
    """Red = 7 * row, green = 7 * column: every pixel says where it came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([7 * rows, 7 * cols, np.full_like(rows, 128)], -1).astype(np.uint8)


def augment(image, n, cutout_p=0.0, seed=0):
    """`n` draws of the train pipeline on `image` (padded as the dataset pads it): uint8 HWC each."""
    transform, padded = train_transforms(cutout_p, seed), pad(image[None])[0]
    return [transform(image=padded)["image"] for _ in range(n)]


def reflect_101(n=32):
    index = np.abs(np.arange(-PAD, n + PAD))
    return np.where(index > n - 1, 2 * (n - 1) - index, index)


def offsets(crop) -> tuple:
    """(dy, dx) of a crop of the padded coordinate image, unflipped or flipped: which window it is."""
    rows, cols = crop[:, 0, 0].astype(int) // 7, crop[0, :, 1].astype(int) // 7
    if cols[0] > cols[-1]:
        cols = cols[::-1]
    dys = [d for d in range(2 * PAD + 1) if np.array_equal(rows, reflect_101()[d:d + 32])]
    dxs = [d for d in range(2 * PAD + 1) if np.array_equal(cols, reflect_101()[d:d + 32])]
    assert len(dys) == 1 and len(dxs) == 1, (rows, cols)  # every crop is a window of the reflect-padded image
    return dys[0], dxs[0]


def chi_square_uniform(values, bins) -> float:
    counts = np.bincount(values, minlength=bins)
    expected = len(values) / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_padding_is_reflect_101_as_albumentations_pads():
    images = make_images(2)[0]
    padded = pad(images)
    assert padded.shape == (20, 40, 40, 3)
    reference = A.PadIfNeeded(32 + 2 * PAD, 32 + 2 * PAD, border_mode=cv2.BORDER_REFLECT_101)
    for image, ours in zip(images, padded):
        assert np.array_equal(ours, reference(image=image)["image"])
    assert not np.array_equal(padded[:, :PAD], np.zeros_like(padded[:, :PAD]))  # not a constant border


def test_the_pipeline_returns_uint8_images_of_32x32():
    out = augment(make_images(1)[0][0], 3, cutout_p=1.0)
    assert all(o.dtype == np.uint8 and o.shape == (32, 32, 3) for o in out)


def test_crop_offsets_are_uniform_over_0_to_8_in_both_directions():
    draws = np.array([offsets(crop) for crop in augment(coordinate_image(), 3000)])
    assert set(draws[:, 0]) == set(draws[:, 1]) == set(range(9))  # 0 and 8 reach the padding
    assert chi_square_uniform(draws[:, 0], 9) < CHI2_8DF_P001
    assert chi_square_uniform(draws[:, 1], 9) < CHI2_8DF_P001
    assert np.corrcoef(draws[:, 0], draws[:, 1])[0, 1] ** 2 < 0.01  # drawn independently


def test_half_of_the_training_images_are_flipped_left_to_right():
    green = [crop[:, :, 1].astype(int) for crop in augment(coordinate_image(), 1000)]
    flipped = np.array([g[:, 0].mean() > g[:, -1].mean() for g in green])  # column 0 greener: mirrored
    assert 0.45 < flipped.mean() < 0.55


def test_exactly_one_8x8_hole_of_the_mean_colour_wholly_inside_at_a_uniform_place():
    black = np.zeros((32, 32, 3), np.uint8)
    corners = []
    for image in augment(black, 2000, cutout_p=1.0):
        hole = np.all(image == MEAN_PX, axis=-1)
        ys, xs = np.nonzero(hole)
        assert hole.sum() == HOLE * HOLE  # a hole cut by the border would have fewer pixels
        assert ys.max() - ys.min() == HOLE - 1 and xs.max() - xs.min() == HOLE - 1
        assert not image[~hole].any()  # nothing else changed
        corners.append((ys.min(), xs.min()))
    corners = np.array(corners)
    assert chi_square_uniform(corners[:, 0], 25) < 52.6  # 24 degrees of freedom
    assert chi_square_uniform(corners[:, 1], 25) < 52.6
    assert set(corners[:, 0]) == set(range(25))  # rows 0..24: touching either edge, never past it
    assert not augment(black, 20, cutout_p=0.0)[0].any()


def test_normalisation_is_albumentations_normalize_to_the_bit():
    images = np.random.default_rng(1).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    per_image = A.Compose([A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0), ToTensorV2()])
    expected = torch.stack([per_image(image=image)["image"] for image in images])
    ours = normalise(torch.from_numpy(images))
    assert ours.dtype == torch.float32 and torch.equal(ours, expected)
    assert ours.is_contiguous(memory_format=torch.channels_last)  # as channels_last training takes it


def test_seeded_pipelines_repeat_and_differ_by_seed():
    image = make_images(1)[0][0]
    a, b, c = (augment(image, 5, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def epochs_of(dataset, workers, epochs=(1, 2), batch_size=4):
    """The images a training loader delivers in each of `epochs`, put back in dataset order."""
    loader = make_loader(dataset, batch_size, train=True, workers=workers, seed=0)
    out = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        order = [i for _, i in loader.sampler]
        images = torch.cat([x for x, _ in loader])
        out.append(images[np.argsort(order)])
    return out


def copies(n=8):
    image = make_images(1)[0][:1]
    return Split(np.repeat(image, n, axis=0), np.zeros(n, np.int64))


@pytest.mark.parametrize("workers", [0, 2])
def test_draws_depend_on_seed_epoch_and_image_only_not_on_the_workers(workers):
    one = epochs_of(CIFARDataset(copies(), train_transforms(), seed=0), 0)
    other = epochs_of(CIFARDataset(copies(), train_transforms(), seed=0), workers)
    for images in one:  # 8 copies of one image: 8 different draws, within a batch and across batches
        assert len({tuple(x.flatten().tolist()) for x in images}) == 8
    assert not any(torch.equal(a, b) for a, b in zip(*one))  # epoch 2 does not repeat epoch 1
    assert all(torch.equal(a, b) for a, b in zip(one, other))  # 0 or 2 workers: the same images
    again = epochs_of(CIFARDataset(copies(), train_transforms(), seed=0), workers, epochs=(2,))
    assert torch.equal(again[0], one[1])  # epoch 2 alone, as after a resume: the same images


def test_every_epoch_has_its_own_order_from_seed_and_epoch_alone():
    a, b = EpochShuffle(100, seed=1), EpochShuffle(100, seed=1)
    a.set_epoch(3)
    first = list(a)
    assert sorted(i for _, i in first) == list(range(100)) and {e for e, _ in first} == {3}
    assert list(a) == first
    b.set_epoch(3)
    assert list(b) == first  # a new sampler at epoch 3, as after a resume
    a.set_epoch(4)
    assert [i for _, i in a] != [i for _, i in first]


def test_test_images_come_as_stored():
    split = Split(*make_images(2))
    loader = make_loader(CIFARDataset(split), batch_size=7, train=False, workers=0)
    images, labels = zip(*loader)
    assert torch.equal(torch.cat(images), normalise(torch.from_numpy(split.images)))
    assert torch.equal(torch.cat(labels), torch.from_numpy(split.labels))


@pytest.mark.parametrize("size", [16, 0])
def test_the_cutout_size_is_a_setting_and_the_figure_title_says_what_the_pipeline_does(size):
    transform, black = train_transforms(1.0, 0, hole=size), pad(np.zeros((1, 32, 32, 3), np.uint8))[0]
    holes = [np.all(transform(image=black)["image"] == MEAN_PX, axis=-1).sum() for _ in range(20)]
    assert set(holes) == {size * size}
    assert describe(transform).endswith(f"{size}x{size} cutout" if size else "no cutout")
    assert describe(train_transforms(0.5)) == "pad 4 (reflect) + random crop 32, flip, 8x8 cutout (p 0.5)"
