import numpy as np
import pytest
import torch

from tests.fakedata import make_images
from utils.data import MEAN, STD, CIFARDataset, EpochShuffle, Split, make_loader
from utils.transforms import PAD, eval_transforms, train_transforms

MEAN_PX = np.round(255 * np.array(MEAN))


def denormalize(t: torch.Tensor) -> np.ndarray:
    """CHW normalised tensor -> HWC pixel values 0..255 (float)."""
    return (t.numpy().transpose(1, 2, 0) * np.array(STD) + np.array(MEAN)) * 255


def coordinate_image() -> np.ndarray:
    """Red = 7 * row, green = 7 * column: every pixel says where it came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([7 * rows, 7 * cols, np.full_like(rows, 128)], -1).astype(np.uint8)


def test_output_dtype_shape_and_normalisation():
    image = np.full((32, 32, 3), 200, np.uint8)
    for transform in (train_transforms(MEAN, STD, cutout_p=0.0, seed=0), eval_transforms(MEAN, STD)):
        out = transform(image=image)["image"]
        assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
        expected = (200 / 255 - np.array(MEAN)) / np.array(STD)
        np.testing.assert_allclose(out.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)


def test_half_of_the_training_images_are_flipped_left_to_right():
    transform = train_transforms(MEAN, STD, cutout_p=0.0, seed=0)
    green = [denormalize(transform(image=coordinate_image())["image"])[:, :, 1] for _ in range(200)]
    flipped = np.mean([g[:, 0].mean() > g[:, -1].mean() for g in green])  # column 0 greener than 31: mirrored
    assert 0.35 < flipped < 0.65


def test_test_pipeline_is_deterministic():
    image = make_images(1)[0][0]
    transform = eval_transforms(MEAN, STD)
    torch.testing.assert_close(transform(image=image)["image"], transform(image=image)["image"])


def test_random_crops_reach_into_the_reflect_padding():
    transform = train_transforms(MEAN, STD, cutout_p=0.0, seed=0)
    reflect = np.abs(np.arange(-PAD, 32 + PAD))             # reflect-101 of the row indices
    reflect = np.where(reflect > 31, 62 - reflect, reflect)
    offsets = set()
    for _ in range(300):
        rows = np.round(denormalize(transform(image=coordinate_image())["image"])[:, 0, 0] / 7).astype(int)
        matches = [dy for dy in range(2 * PAD + 1) if np.array_equal(rows, reflect[dy:dy + 32])]
        assert len(matches) == 1, rows  # every crop is a window of the reflect-padded image
        offsets.add(matches[0])
    assert offsets == set(range(2 * PAD + 1))  # all 9 vertical offsets, 0 and 8 need 4 padded rows


def test_exactly_one_8x8_hole_filled_with_the_mean():
    transform = train_transforms(MEAN, STD, cutout_p=1.0, seed=0)
    black = np.zeros((32, 32, 3), np.uint8)
    for _ in range(50):
        pixels = denormalize(transform(image=black)["image"])
        hole = np.all(np.abs(pixels - MEAN_PX) < 0.5, axis=-1)
        ys, xs = np.nonzero(hole)
        assert hole.sum() == 64
        assert ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7
    assert np.allclose(denormalize(train_transforms(MEAN, STD, cutout_p=0.0, seed=0)(image=black)["image"]), 0, atol=0.5)


def test_seeded_pipelines_repeat_and_differ_by_seed():
    image = make_images(1)[0][0]
    a, b, c = (train_transforms(MEAN, STD, seed=s) for s in (1, 1, 2))
    runs = [[t(image=image)["image"] for _ in range(5)] for t in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(runs[0], runs[1]))
    assert not all(torch.equal(x, y) for x, y in zip(runs[0], runs[2]))


def draws(dataset, workers, epochs=(1, 2)):
    loader = make_loader(dataset, batch_size=2, train=False, workers=workers, persistent=False)
    out = []
    for epoch in epochs:
        dataset.set_epoch(epoch)
        out.append(torch.cat([x for x, _ in loader]))
    return out


def test_seeded_dataset_draws_per_image_and_epoch_whatever_the_workers():
    image = make_images(1)[0][:1]
    split = Split(np.repeat(image, 8, axis=0), np.zeros(8, np.int64))
    one, two = (draws(CIFARDataset(split, train_transforms(MEAN, STD), seed=0), workers) for workers in (0, 2))
    for batch in one:  # 8 copies of one image: 8 different draws
        assert len({tuple(x.flatten().tolist()) for x in batch}) == 8
    assert not any(torch.equal(a, b) for a, b in zip(*one))  # epoch 2 does not repeat epoch 1
    assert all(torch.equal(a, b) for a, b in zip(one, two))  # 0 or 2 workers: the same images
    again = draws(CIFARDataset(split, train_transforms(MEAN, STD), seed=0), 0, epochs=(2,))
    assert torch.equal(again[0], one[1])  # epoch 2 alone, as after a resume: the same images


def test_unseeded_dataset_workers_draw_different_augmentations():
    torch.manual_seed(0)  # the workers' seeds come from torch's global generator
    image = make_images(1)[0][:1]
    split = Split(np.repeat(image, 8, axis=0), np.zeros(8, np.int64))
    loader = make_loader(CIFARDataset(split, train_transforms(MEAN, STD, seed=0)), batch_size=1, train=False, workers=2)
    batch = torch.cat([x for x, _ in loader])  # served alternately by 2 workers: all different
    assert len({tuple(x.flatten().tolist()) for x in batch}) == 8


def test_epoch_shuffle_depends_on_seed_and_epoch_only():
    a, b = EpochShuffle(100, seed=1), EpochShuffle(100, seed=1)
    a.set_epoch(3)
    first = list(a)
    assert sorted(first) == list(range(100)) and list(a) == first
    b.set_epoch(3)
    assert list(b) == first  # a new sampler at epoch 3, as after a resume
    a.set_epoch(4)
    assert list(a) != first
