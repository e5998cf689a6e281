"""The analysis views: predictions, per-class scores, confusion matrix, mistakes, Grad-CAM, figures."""
import numpy as np
import pytest
import torch

from pytorch_grad_cam import GradCAM, LayerCAM

from models import CustomResNet
from tests.fakedata import make_images
from utils import gallery, plots
from utils.data import CLASSES, Split
from utils.loaders import CIFARDataset, make_loader
from utils.lr import LRTest
from utils.transforms import MEAN, STD, normalise, train_transforms


def test_confusion_counts_true_rows_and_predicted_columns():
    matrix = gallery.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])
    assert matrix.shape == (10, 10) and matrix.sum() == 6
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[2, 0] == 1 and matrix[2, 2] == 2


def test_per_class_table_lists_every_class_with_correct_over_total():
    matrix = gallery.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])
    lines = gallery.per_class_table(matrix).splitlines()
    assert len(lines) == 1 + len(CLASSES) + 1
    assert lines[1].split() == ["airplane", "1", "/", "2", "50.0%"]
    assert lines[3].split() == ["bird", "2", "/", "3", "66.7%"]
    assert lines[-1].split() == ["all", "4", "/", "6", "66.7%"]


def test_most_confident_mistakes_are_wrong_and_sorted_by_confidence():
    probs = np.full((6, 10), 0.01)
    for i, (cls, p) in enumerate([(0, 0.9), (1, 0.6), (2, 0.95), (3, 0.5), (4, 0.99), (5, 0.7)]):
        probs[i, cls] = p
    labels = np.array([0, 0, 0, 0, 4, 0])  # images 1, 2, 3, 5 are wrong
    assert gallery.most_confident_mistakes(probs, labels, n=3).tolist() == [2, 5, 1]
    assert gallery.most_confident_mistakes(probs, labels, n=20).tolist() == [2, 5, 1, 3]


def test_probabilities_are_the_softmax_in_float64():
    assert gallery.probabilities(torch.tensor([[0.0, 0.0] + [-1e9] * 8]))[0, :2] == pytest.approx([0.5, 0.5])
    sure = gallery.probabilities(torch.tensor([[20.0] + [0.0] * 9]))
    assert 0 < 1 - sure.max() < 1e-7  # not rounded to 1: the gallery can still tell it from 100%


def test_normalise_gives_the_network_input_computed_by_hand():
    images = make_images(1)[0][:3]
    by_hand = (images / 255.0 - np.array(MEAN)) / np.array(STD)  # (N, 32, 32, 3)
    expected = torch.from_numpy(by_hand.transpose(0, 3, 1, 2)).float()
    torch.testing.assert_close(normalise(torch.from_numpy(images)), expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def trained_a_little():
    """The real network after a few steps on generated images, so that class scores differ."""
    torch.manual_seed(0)
    model = CustomResNet()
    images, labels = make_images(4)
    x, y = normalise(torch.from_numpy(images)), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, images[::4][:6], labels[::4][:6]


@pytest.mark.parametrize("layer, mode, method", [("res1", True, LayerCAM), ("res1", False, GradCAM),
                                                 ("res3", False, GradCAM)])
def test_grad_cam_shape_range_hooks_and_mode(trained_a_little, layer, mode, method):
    model, images, labels = trained_a_little
    model.train(mode)
    target = getattr(model, layer)
    with torch.no_grad():  # GradCAM needs gradients: grad_cam turns them back on
        cams = gallery.grad_cam(model, target, images, labels, method)
    assert cams.shape == (len(images), 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1 and cams.max() > 0.99  # scaled to 0..1
    assert model.training is mode
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())  # hooks gone


def test_grad_cam_closes_its_cam_object_before_returning(trained_a_little):
    """The hooks must go when grad_cam returns, not whenever the garbage collector gets to the object."""
    model, images, labels = trained_a_little
    events = []

    class Watched(GradCAM):
        def __exit__(self, *args):
            events.append("exit")
            return super().__exit__(*args)

        def __del__(self):
            events.append("del")

    keep = []
    original_init = Watched.__init__
    Watched.__init__ = lambda self, *a, **k: (keep.append(self), original_init(self, *a, **k))[1]
    gallery.grad_cam(model, model.res1, images, labels, Watched)
    assert events == ["exit"]  # closed by the with block while a reference still lives (no __del__ yet)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_grad_cam_of_the_true_class_differs_from_the_predicted_one(trained_a_little):
    model, images, labels = trained_a_little
    other = (labels + 5) % 10
    same, swapped = (gallery.grad_cam(model, model.res1, images, classes) for classes in (labels, other))
    assert np.abs(same - swapped).max(axis=(1, 2)).min() > 0.05  # every image's map changes with the class
    np.testing.assert_allclose(gallery.grad_cam(model, model.res1, images, labels), same, atol=1e-5)


def axes_with_images(fig):
    return [ax for ax in fig.axes if ax.images]


def test_grad_cam_grid_has_three_panels_per_image_and_names_the_layer(trained_a_little):
    model, images, labels = trained_a_little
    cams = np.random.default_rng(0).random((len(images), 32, 32)).astype(np.float32)
    predicted = (labels + 1) % 10
    fig = plots.grad_cam_grid(images, labels, predicted, cams, cams, layer="res1 (16x16)",
                              method="LayerCAM", per_row=4)
    assert len(axes_with_images(fig)) == 3 * len(images)
    assert fig._suptitle.get_text().startswith("LayerCAM at res1 (16x16)")
    titles = [ax.get_title() for ax in axes_with_images(fig)][:3]
    assert titles == [f"true {CLASSES[labels[0]]}", f"for pred. {CLASSES[predicted[0]]}",
                      f"for true {CLASSES[labels[0]]}"]


def test_map_summary_counts_blank_maps_and_the_mean():
    maps = np.zeros((4, 32, 32), np.float32)
    maps[0] = 1.0
    maps[1, :16] = 0.5
    assert gallery.map_summary(maps) == "2 of 4 maps blank, mean value 0.31"


def test_galleries_and_matrices_draw_one_panel_per_item():
    images, labels = make_images(2)
    fig = plots.misclassified_grid(images[:7], labels[:7], (labels[:7] + 1) % 10, np.full(7, 0.9), ncols=5)
    assert len(axes_with_images(fig)) == 7 and "pred" in fig.axes[0].get_title()
    fig = plots.confusion_matrix(gallery.confusion(labels, labels))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(CLASSES)
    assert len(fig.axes[0].texts) == 100


def test_augmentation_grid_shows_the_very_images_training_sees():
    images, labels = make_images(1)
    dataset = CIFARDataset(Split(images, labels), train_transforms(), seed=0)
    loader = make_loader(dataset, 4, train=True, workers=0)
    fig = plots.augmentation_grid(dataset, n=3, epochs=range(1, 5))
    assert len(axes_with_images(fig)) == 3 * 5
    drawn = [ax.images[0].get_array() for ax in fig.axes[1:5]]
    assert not np.allclose(drawn[0], drawn[1])  # different epochs, different draws
    first = plots.by_class(labels)[0]
    assert np.array_equal(fig.axes[0].images[0].get_array(), images[first])  # the original, unpadded
    loader.sampler.set_epoch(2)
    order = [i for _, i in loader.sampler]
    delivered = torch.cat([x for x, _ in loader])
    shown = torch.from_numpy(np.asarray(fig.axes[2].images[0].get_array())[None])
    assert torch.equal(normalise(shown)[0], delivered[order.index(first)])  # what the network got


def history(n=3):
    return [{"epoch": e, "train_loss": 2 / e, "test_loss": 2.1 / e, "train_acc": 0.3 * e,
             "test_acc": 0.29 * e, "seconds": 10.0} for e in range(1, n + 1)]


def test_sample_grids_show_every_class():
    images, labels = make_images(3)
    assert plots.by_class(labels, per_class=2)[:4] == [0, 1, 3, 4]
    fig = plots.image_grid(images, labels, per_class=2)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 20 and sorted(set(titles)) == sorted(CLASSES)


def test_curves_plot_train_and_test_per_epoch():
    fig = plots.curves(history())
    loss, acc = fig.axes
    assert [line.get_label() for line in loss.lines] == ["train", "test"]
    assert list(acc.lines[1].get_ydata()) == pytest.approx([29, 58, 87])


def test_results_table_puts_the_final_epoch_first(tmp_path):
    rows = history()
    rows[1]["test_acc"] = 0.95  # a better epoch in the middle: information only
    info = {"device": "cpu", "precision": "bf16", "data_source": "CIFAR-10 (JPEG copy)"}
    rows[-1]["execution"] = 3
    text = gallery.results_table(rows, info, LRTest([], [], 1e-2, 1e-2, 1e-4))
    first = text.splitlines()[0]
    assert "final epoch" in first and "87.00%" in first
    assert "95.00% (epoch 2)" in text and "1.00e-04 / 1.00e-02" in text and "2 times" in text


@pytest.mark.parametrize("workers, resumes, words", [(1, 1, ("1 loader worker\n", "once")),
                                                     (2, 0, ("2 loader workers", "never"))])
def test_results_table_speaks_plain_english(workers, resumes, words):
    rows = history()
    rows[-1]["execution"] = 1 + resumes
    text = gallery.results_table(rows, {"device": "cpu", "workers": workers},
                                 LRTest([], [], 1e-2, 1e-2, 1e-4))
    for word in words:
        assert word in text + "\n"
    assert "(s)" not in text


def test_seconds_per_epoch_is_the_median_of_the_epochs():
    rows = history()
    for row, seconds in zip(rows, (700, 350, 360)):
        row["seconds"] = seconds
    assert gallery.seconds_per_epoch(rows) == 360
    assert "seconds per epoch              360 (median of 3 epochs" in gallery.results_table(
        rows, {}, LRTest([], [], 1e-2, 1e-2, 1e-4))


@pytest.mark.parametrize("p, shown", [(0.6, "60%"), (0.99, "99%"), (0.991, "99.1%"), (0.99912, "99.91%"),
                                      (0.99998, "99.998%"), (0.999996, "99.9996%"),
                                      (0.9999992, ">99.9999%"), (1.0, ">99.9999%")])
def test_confidences_show_the_decimals_that_tell_them_from_100(p, shown):
    assert gallery.percent(p) == shown


def test_save_writes_png_only_when_given_a_folder(tmp_path):
    fig = plots.curves(history())
    assert plots.save(fig, tmp_path / "figs", "curves") is fig
    assert (tmp_path / "figs" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert plots.save(fig, "", "curves") is fig
