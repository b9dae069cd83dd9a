"""The design runs behind notebook 08's adapted model, on a validation split (never the test set).

Each variant trains on the first 50,000 Fashion-MNIST training images and is scored on the
last 10,000 (``recipes.run(recipe, valid_size=10_000)``, the one training path). Each run's history is saved as
``eva_utils/results/08_design_<variant>.json`` (package data); notebook 08 reads and shows them, so the
numbers behind its design decisions come from these runs, not from the test set.

    OMP_NUM_THREADS=1 python tools/fashion_design.py              # every variant
    OMP_NUM_THREADS=1 python tools/fashion_design.py final_rot7   # the named ones
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from eva_utils import engine, histories, models, recipes  # noqa: E402
from eva_utils.models import check_input, conv_block  # noqa: E402

VALIDATION = 10_000
EPOCHS = 8  # short, to keep the exploration small; the same for every variant
SEED = 1

class FirstCandidate(nn.Module):
    """The first adapted candidate, rejected on the validation split: every conv padded and a
    second max-pool down to 7x7 (7,756 parameters, like the final model)."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv_block(1, 8, padding=1, bn=True)      # 28 -> 28 | RF 3
        self.conv2 = conv_block(8, 16, padding=1, bn=True)     # 28 -> 28 | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                        # 28 -> 14 | RF 6
        self.trans1 = conv_block(16, 10, kernel=1, bn=True)    # 14 -> 14 | RF 6
        self.conv3 = conv_block(10, 16, padding=1, bn=True)    # 14 -> 14 | RF 10
        self.conv4 = conv_block(16, 16, padding=1, bn=True)    # 14 -> 14 | RF 14
        self.pool2 = nn.MaxPool2d(2, 2)                        # 14 -> 7  | RF 16
        self.conv5 = conv_block(16, 16, padding=1, bn=True)    # 7 -> 7   | RF 24
        self.gap = nn.AdaptiveAvgPool2d(1)                     # 7 -> 1   | RF 48
        self.head = nn.Conv2d(16, 10, 1, bias=False)

    def forward(self, x):
        check_input(x, what="Fashion-MNIST images")
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.pool2(self.conv4(self.conv3(x))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


#: The course's reference runs (package data): notebook 08 reads these.
REFERENCE_RUNS = Path(__file__).resolve().parent.parent / "eva_utils" / "results"

# the final recipe as these runs were made: its OneCycle over all epochs, rotation alone, running
# BatchNorm statistics (06's hold, precise BN and the elastic distortion came later)
FINAL_ON_FASHION = recipes.RECIPES["final"].with_(dataset="fashion_mnist", hold_epochs=0, precise_bn=0, elastic=0.0)
ADAPTED = recipes.RECIPES["fashion_adapted"]  # the final model's recipe, with flips, on the adapted model
NO_ROTATION = dict(rotation=0.0)

#: variant -> (model factory, recipe).
VARIANTS = {
    # the course's final model and recipe as they were (rotation +-7 degrees)
    "final_rot7": (lambda: models.build("final"), FINAL_ON_FASHION),
    # the same model, shifts of up to 2 px + horizontal flips instead of rotation
    "final_shiftflip": (lambda: models.build("final"), FINAL_ON_FASHION.with_(crop_padding=2, flip=0.5, **NO_ROTATION)),
    # the first candidate (every conv padded, second max-pool), shift + flip
    "candidate1_shiftflip": (FirstCandidate, ADAPTED.with_(crop_padding=2)),
    # the final model with flips only
    "final_flip": (lambda: models.build("final"), FINAL_ON_FASHION.with_(flip=0.5, **NO_ROTATION)),
    # the adapted model (first block padded) with flips only
    "adapted_flip": (lambda: models.build("fashion_adapted"), ADAPTED),
}


def run(variant: str, epochs: int = EPOCHS):
    factory, recipe = VARIANTS[variant]
    engine.seed_everything(SEED)  # before the weights are drawn, as the command line does
    start = time.perf_counter()
    result = recipes.run(recipe, SEED, model=factory(), device="cpu", valid_size=VALIDATION,
                         settings=recipes.RunSettings(epochs), progress=False, verbose=False)
    history = result.history
    histories.drop_per_step(history)  # the recipe's per-step LRs and momenta stay out of the package
    history.meta.update(variant=variant,
                        evaluated_on=f"validation: the last {VALIDATION:,} training images",
                        augment=repr(result.loaders.train.augment), recipe=recipe.name)
    path = histories.save_history(history, f"08_design_{variant}", results_dir=REFERENCE_RUNS)
    best, ep = history.best_test
    print(f"{variant}: {history.meta['params']:,} params, best validation {best:.2f}% (epoch {ep}), "
          f"last {history.test_acc[-1]:.2f}%, train {history.train_acc[-1]:.2f}%, "
          f"{time.perf_counter() - start:.0f} s -> {path}", flush=True)
    return history


if __name__ == "__main__":
    for name in sys.argv[1:] or list(VARIANTS):
        run(name)
