"""Nothing unverified is trained on (issue 32): NaN/inf augmentation and recipe values.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from eva_utils import augment as aug
from eva_utils import data, recipes, sources

REPO = Path(__file__).resolve().parent.parent
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


# ----------------------------------------------------------------------------- 5. NaN / inf augmentation and recipe values


AUGMENTATIONS = {
    "RandomAffine degrees": lambda v: aug.RandomAffine(degrees=v),
    "RandomAffine degrees[0]": lambda v: aug.RandomAffine(degrees=(v, 5.0)),
    "RandomAffine translate[1]": lambda v: aug.RandomAffine(translate=(0.1, v)),
    "RandomAffine scale[0]": lambda v: aug.RandomAffine(scale=(v, 1.1)),
    "RandomAffine fill": lambda v: aug.RandomAffine(fill=v),
    "RandomAffine shear": lambda v: aug.RandomAffine(shear=v),
    "RandomAffine elastic": lambda v: aug.RandomAffine(elastic=v),
    "RandomAffine elastic_sigma": lambda v: aug.RandomAffine(elastic=16.0, elastic_sigma=v),
    "RandomHorizontalFlip p": lambda v: aug.RandomHorizontalFlip(v),
    "RandomCrop fill": lambda v: aug.RandomCrop(4, fill=v),
    "Cutout fill": lambda v: aug.Cutout(8, fill=v),
    "Cutout p": lambda v: aug.Cutout(8, p=v),
    "MeanFill mean[1]": lambda v: aug.MeanFill(aug.RandomCrop(4), (0.5, v, 0.5)),
    "rotate degrees": lambda v: aug.rotate(torch.zeros(1, 1, 28, 28), v),
}


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_refuses_non_finite_values(name, value):
    with pytest.raises(ValueError) as err:
        AUGMENTATIONS[name](value)
    assert str(err.value).startswith(f"{name} must be") and str(err.value).endswith(f"got {value}")


@pytest.mark.parametrize("make, named", [
    (lambda: aug.RandomAffine(degrees=181), "degrees"), (lambda: aug.RandomAffine(translate=(0.1, 1.5)), "translate"),
    (lambda: aug.RandomAffine(scale=(0.0, 1.1)), "scale"), (lambda: aug.RandomAffine(scale=(1.2, 0.9)), "low <= high"),
    (lambda: aug.RandomHorizontalFlip(1.5), "p"), (lambda: aug.RandomCrop(2.5), "whole number"),
    (lambda: aug.Cutout(-1), "size"), (lambda: aug.RandomAffine(degrees="7"), "degrees"),
])
def test_augmentations_refuse_values_out_of_range(make, named):
    with pytest.raises(ValueError, match=named):
        make()


def test_the_course_augmentations_still_build_and_run():
    x = torch.rand(4, 1, 28, 28)
    for a in (aug.RandomAffine(7), aug.RandomAffine(degrees=(-7, 7), translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10.0,
                                                     elastic=16.0), aug.RandomHorizontalFlip(), aug.Cutout(8, p=0.5)):
        assert torch.isfinite(a(x, torch.Generator().manual_seed(0))).all()


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if data is loaded: the bad value must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the bad value was refused")
    monkeypatch.setattr(sources, "load", refuse)
    monkeypatch.setattr(sources, "torchvision_dataset", refuse)


@pytest.mark.parametrize("kwargs, named", [
    ({"rotation": float("nan")}, "rotation"),
    ({"rotation": float("inf")}, "rotation"),
    ({"rotation": -3.0}, "rotation"),
    ({"fast": False, "rotation": float("nan")}, "rotation"),
    ({"fast": False, "classic_transform": {"flip": float("nan")}}, "flip"),
    ({"fast": False, "classic_transform": {"crop_padding": float("inf")}}, "crop_padding"),
    ({"fast": False, "classic_transform": {"elastic": float("nan")}}, "elastic"),
    ({"fast": False, "classic_transform": {"zoom": 0.1}}, "zoom"),
])
def test_loaders_refuse_bad_augmentation_values_before_loading(kwargs, named, no_data):
    with pytest.raises(ValueError, match=named):
        data.loaders(64, device="cpu", train_limit=64, **kwargs)


def test_a_nan_rotation_was_blanking_the_images():
    """What the refusal prevents: a NaN angle makes every sampling point NaN, and the warp returns only the fill."""
    x = torch.rand(4, 1, 28, 28)
    theta = aug.affine_theta(torch.full((4,), float("nan")))
    assert torch.all(aug.warp(x, theta) == aug.COURSE_FILL)


@pytest.mark.parametrize("field", list(recipes.RECIPE_RANGES))
def test_every_numeric_recipe_field_refuses_nan_and_inf(field):
    for value in NON_FINITE:
        with pytest.raises(ValueError) as err:
            recipes.RECIPES["final"].with_(**{field: value})
        assert str(err.value).startswith(f"recipe '06_optimizer': {field} must be") and str(value) in str(err.value)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("changes", [
    {"epochs": 0}, {"epochs": 2.5}, {"batch_size": 0}, {"batch_size": True}, {"lr": 0.0}, {"max_lr": -0.1},
    {"rotation": 181.0}, {"rotation": -1.0}, {"translate": 1.5}, {"scale": 1.0}, {"elastic": -1.0},
    {"crop_padding": -1}, {"flip": 1.5}, {"cutout": 2.5}, {"cutout_p": -0.1}, {"momentum": 1.0},
    {"weight_decay": -1e-4}, {"pct_start": 0.0}, {"pct_start": 1.0}, {"hold_epochs": -1},
    {"bn_momentum": 0.0}, {"precise_bn": -5}, {"label_smoothing": 1.0}, {"ema": 1.0}, {"lr": "0.01"},
], ids=str)
def test_recipe_fields_out_of_range_are_refused_naming_the_field(changes):
    (field, value), = changes.items()
    with pytest.raises(ValueError, match=rf"^recipe 'x': {field} must be .*, got {re.escape(repr(value))}$"):
        recipes.Recipe("x", "final", **changes)


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_shipped_recipe_and_design_candidate_still_constructs():
    """The checks refuse nothing the course uses: its recipes, notebook 07's variants, the design tools'."""
    made = list(recipes.RECIPES.values()) + [v[0] for v in recipes.stretch_variants().values()]
    made += [v[0] for v in _load_tool("final_design").CANDIDATES.values() if isinstance(v, tuple)]
    made += [v[1] for v in _load_tool("fashion_design").VARIANTS.values()]
    assert len(made) > 40 and all(isinstance(r, recipes.Recipe) for r in made)
    for recipe in made:
        assert recipe.with_() == recipe  # replace() runs the checks again
        recipe.make_augment()  # and so do the augmentations it builds
