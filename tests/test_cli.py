"""The command line, end to end on a small subset of real MNIST."""
import subprocess
import sys

import pytest

from eva_utils import models


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "eva_utils", *args], capture_output=True, text=True, timeout=600)


def test_train_runs_end_to_end_and_saves_a_loadable_checkpoint(tmp_path):
    ckpt = tmp_path / "final.pt"
    r = run_cli("train", "--model", "final", "--epochs", "2", "--seed", "1", "--save", str(ckpt),
                "--train-limit", "512", "--test-limit", "500", "--no-progress")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Total params: 7,756" in out and "RF" in out
    assert out.count("Test set: Average loss:") == 2 and "/500 (" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Course target NOT MET") and "7,756 parameters < 8,000" in last
    model = models.load(ckpt)
    assert not model.training and model.registry_name == "final"


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "resnet"], "invalid choice"),
    (["train", "--epochs", "0"], "must be at least 1"),
    (["train", "--epochs", "ten"], "expected a whole number"),
])
def test_bad_arguments_get_clear_errors(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    assert message in r.stderr


def test_bench_tiny_mode_prints_the_table():
    r = run_cli("bench", "--tiny", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "| textbook (DataLoader+PIL, fp32, NCHW, eager)" in r.stdout
    assert "fast path" in r.stdout and "Evaluation of the 10,000 test images" in r.stdout


def test_cli_repeats_the_notebooks_training_exactly(tmp_path):
    """Notebook 06's cells (seed, build, loaders, recipe, fit) and the CLI give one history."""
    import os

    import torch

    from eva_utils import data, engine, recipes

    ckpt = tmp_path / "cli.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "eva_utils", "train", "--model", "final", "--epochs", "2",
                        "--seed", "3", "--train-limit", "1024", "--test-limit", "500", "--no-progress",
                        "--save", str(ckpt)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    cli = torch.load(ckpt, weights_only=True)["history"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = recipes.get_recipe("final")
        engine.seed_everything(3)
        model = models.build("final")
        loaders = data.loaders(recipe.batch_size, rotation=recipe.rotation, seed=3, device="cpu",
                               train_limit=1024, test_limit=500)
        optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), 2)
        h = engine.fit(model, 2, loaders.train, loaders.test, optimizer, scheduler, progress=False, verbose=False)
    finally:
        torch.set_num_threads(threads)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "batch_lr"):
        assert getattr(h, key) == cli[key], key


def test_cli_trains_the_stretch_recipe_like_notebook_07(tmp_path):
    """Notebook 07's runs go through recipes.run; the CLI's --model stretch gives the same history."""
    import os

    import torch

    from eva_utils import recipes

    ckpt = tmp_path / "stretch.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "eva_utils", "train", "--model", "stretch", "--epochs", "1",
                        "--seed", "2", "--train-limit", "1024", "--test-limit", "300", "--batch-size", "64",
                        "--no-progress", "--save", str(ckpt)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("Stretch target NOT MET")
    cli = torch.load(ckpt, weights_only=True)["history"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = recipes.get_recipe("stretch").with_(batch_size=64)
        h = recipes.run(recipe, 2, device="cpu", settings=recipes.RunSettings(1, 1024, 300),
                        progress=False, verbose=False).history
    finally:
        torch.set_num_threads(threads)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "batch_lr"):
        assert getattr(h, key) == cli[key], key
    assert models.load(ckpt).registry_name == "stretch"


def test_cli_validation_runs_say_so_and_skip_the_target():
    r = run_cli("train", "--model", "stretch", "--epochs", "1", "--train-limit", "512", "--batch-size", "32",
                "--valid", "500", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "Validation set: Average loss" in r.stdout and "/500 (" in r.stdout
    assert "Best validation accuracy" in r.stdout and "target" not in r.stdout.splitlines()[-1]
