"""The layer refactor changed no training numerics: the first steps of a recipe, as recorded before it.

``tests/fixtures/refactor_reference.json`` was written by the code before the data, model and
recipe layers were merged (one ``loaders()`` for every dataset, one model registry, one
recipe table): for seed 1, the sums of the first training batches (augmented), their
labels, the first test batch, and the training loss of each of the first optimizer steps
in fp32. The same measurement with today's code must agree: same images in the same order,
same augmentation draws, same initial weights, same optimizer and schedule.

Issue 31 (one start call, grouped loop options, one record of each run) added two more, recorded
by the code before it: ``mnist_final_elastic``, the final recipe's first steps as it is today (its
hold and its elastic distortion), and ``mnist_final_run``, a short run of it through
``recipes.run`` (loaders, precise BN, the loop, the evaluation).

(CIFAR-10 is not compared: its offline cache now stores the class-sorted PNG folders in a
fixed shuffled order, on purpose, so that a limited split holds every class.)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from eva_utils import data, engine, models, recipes

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "refactor_reference.json").read_text())
STEPS = 6


def first_steps(recipe: recipes.Recipe) -> dict:
    """What the recorded script measured, through today's one training path's parts."""
    engine.seed_everything(1)
    model = models.build(recipe.model)
    loaders = data.loaders(recipe.batch_size, dataset=recipe.info, augment=recipe.make_augment(), seed=1,
                           device="cpu")
    optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), recipe.epochs)
    model.train()
    out = {"batches": [], "losses": []}
    for i, (x, y) in enumerate(loaders.train):
        if i == STEPS:
            break
        out["batches"].append({"sum": float(x.double().sum()), "abs": float(x.double().abs().sum()),
                               "targets": y[:16].tolist(), "n": len(y)})
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        out["losses"].append(loss.item())
    tx, ty = next(iter(loaders.test))
    out["test_first"] = {"sum": float(tx.double().sum()), "targets": ty[:16].tolist(), "n": len(loaders.test.dataset)}
    out["params"] = engine.count_parameters(model)
    return out


def assert_same_first_steps(got: dict, want: dict) -> None:
    assert got["params"] == want["params"]
    assert got["test_first"]["targets"] == want["test_first"]["targets"]
    assert got["test_first"]["n"] == want["test_first"]["n"]
    assert got["test_first"]["sum"] == pytest.approx(want["test_first"]["sum"], rel=1e-9)
    for g, w in zip(got["batches"], want["batches"], strict=True):
        assert (g["targets"], g["n"]) == (w["targets"], w["n"])  # the same images in the same order
        # the same augmentation draws (float32 sums of 100k pixels: CPUs differ in the last digits)
        assert g["sum"] == pytest.approx(w["sum"], rel=1e-5)
        assert g["abs"] == pytest.approx(w["abs"], rel=1e-5)
    # the same weights, optimizer and schedule: fp32 losses agree far beyond what any change moves
    assert got["losses"] == pytest.approx(want["losses"], rel=1e-4)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as recorded
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("key, recipe_name", [
    ("mnist_final", "final"),
    pytest.param("fashion_adapted", "fashion_adapted", marks=pytest.mark.needs_data("fashion_mnist")),
])
def test_first_steps_as_before_the_refactor(key, recipe_name, one_thread):
    # as recorded: the final recipe then ran its OneCycle over all 15 epochs on rotation alone
    # (issue 12 added the 2-epoch hold at the end, which shortens the cycle and so changes its
    # first LRs a little, and the elastic distortion, which changes every training image)
    got = first_steps(recipes.get_recipe(recipe_name).with_(hold_epochs=0, elastic=0.0))
    assert_same_first_steps(got, REFERENCE[key])


def test_the_final_recipes_first_steps_with_its_elastic_distortion(one_thread):
    """Recorded before issue 31's refactor (one start call, grouped loop options): today's final
    recipe as it is, with its hold and its elastic distortion drawn in the rotation's warp."""
    assert_same_first_steps(first_steps(recipes.get_recipe("final")), REFERENCE["mnist_final_elastic"])


def test_a_short_run_of_the_final_recipe_as_before_the_refactor(one_thread):
    """The whole path a notebook and the command line train through (recipes.run: loaders, precise
    BN, OneCycle with its hold, the loop, the evaluation), 3 epochs on 1,024 images in fp32, as
    recorded before issue 31's refactor regrouped its options."""
    want = REFERENCE["mnist_final_run"]
    history = recipes.run(recipes.get_recipe("final"), 1, device="cpu", settings=recipes.RunSettings(3, 1024, 200),
                          speed=engine.Speed(precision="fp32"), progress=False, verbose=None).history
    assert history.meta["params"] == want["params"]
    assert history.test_total == want["test_total"]
    assert history.batch_lr == pytest.approx(want["batch_lr"], rel=1e-9)  # the same schedule, step by step
    assert history.lr == pytest.approx(want["lr"], rel=1e-9)
    assert history.train_loss == pytest.approx(want["train_loss"], rel=1e-4)
    assert history.test_loss == pytest.approx(want["test_loss"], rel=1e-4)
    assert history.train_acc == pytest.approx(want["train_acc"], abs=0.2)  # a prediction or two may flip on another CPU
    assert all(abs(a - b) <= 1 for a, b in zip(history.test_correct, want["test_correct"], strict=True))
