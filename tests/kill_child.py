"""A training process for the kill-and-resume test: `python -m tests.kill_child FOLDER OUT [--hang-at EPOCH]`.

Trains the tiny net on generated data for 4 epochs with a checkpoint. With --hang-at E it writes
OUT + ".hanging" in the middle of epoch E and waits there to be killed; without it, it resumes
the run in FOLDER if there is one and writes the history as JSON to OUT.
"""
import json
import sys
import time

import torch

from tests.fakedata import loaders, tiny_net
from utils.lr import one_cycle
from utils.device import Precision
from utils.run import Run
from utils.training import fit

EPOCHS = 4


class HangMidEpoch:
    """Wraps a loader; in epoch `hang_at` it announces itself after 2 batches and sleeps."""

    def __init__(self, loader, hang_at, flag):
        self.loader, self.hang_at, self.flag, self.epoch = loader, hang_at, flag, 0
        self.sampler = loader.sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epoch += 1
        for i, batch in enumerate(self.loader):
            if self.epoch == self.hang_at and i == 2:
                open(self.flag, "w").close()
                time.sleep(600)
            yield batch


def main(ckpt, out, hang_at=None):
    torch.manual_seed(0)
    model = tiny_net()
    train, test = loaders(n_train=40, n_test=10, batch_size=50)
    if hang_at:
        train = HangMidEpoch(train, hang_at, out + ".hanging")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = one_cycle(optimizer, 2e-2, 2e-3, EPOCHS, len(train), peak_epoch=1)
    history = fit(model, train, test, optimizer, scheduler, EPOCHS, torch.device("cpu"), Precision(),
                  run=Run(ckpt, {}, Precision()), progress=False)
    with open(out, "w") as f:
        json.dump(history, f)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[3]) if len(args) > 3 and args[2] == "--hang-at" else None)
