"""The pieces notebook 07 adds: a validation split, weight averaging, richer recipes, the stretch target."""
import pytest
import torch

from eva_utils import augment, data, engine, models, recipes
from eva_utils.histories import History


def test_validation_split_is_the_last_images_and_never_trained_on(mnist_sets):
    train_set, _ = mnist_sets
    loaders = data.loaders(500, device="cpu", splits=data.Splits(valid_size=10_000, test_limit=100))
    assert len(loaders.train.images) == 50_000 and len(loaders.valid.images) == 10_000
    assert torch.equal(loaders.valid.images[:, 0], train_set.data[50_000:])
    assert torch.equal(loaders.train.images[:, 0], train_set.data[:50_000])
    assert loaders.valid.augment is None and not loaders.valid.shuffle
    # the classic 50k/10k split has every class in both parts
    assert torch.bincount(loaders.valid.targets, minlength=10).min() > 900


def test_without_a_validation_split_nothing_changes():
    plain = data.loaders(128, device="cpu", splits=data.Splits(train_limit=300, test_limit=50))
    assert plain.valid is None and len(plain.train.images) == 300


@pytest.mark.parametrize("size", [-1, 60_000, 70_000])
def test_impossible_validation_sizes_are_refused(size):
    with pytest.raises(ValueError, match="valid_size"):
        data.loaders(128, device="cpu", splits=data.Splits(valid_size=size))


def test_ema_tracks_the_average_and_fit_returns_the_averaged_weights():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    averaged = engine.ema_model(model, 0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    averaged.update_parameters(model)  # first update copies the weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    averaged.update_parameters(model)
    for k, v in averaged.module.state_dict().items():
        assert torch.allclose(v, start[k] + 1.5)  # 0.5 * (w+1) + 0.5 * (w+2)
    with pytest.raises(ValueError, match="decay"):
        engine.ema_model(model, 1.5)


def test_fit_with_ema_evaluates_the_average(tmp_path):
    engine.seed_everything(0)
    loaders = data.loaders(64, device="cpu", test_batch_size=256,
                           splits=data.Splits(train_limit=256, test_limit=256))
    model = models.build("final")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    h = engine.fit(model, 2, loaders.train, loaders.test, opt, progress=False, verbose=False,
                   evaluation=engine.EvalOptions(ema=0.9), checkpoints=engine.Checkpoints(tmp_path))
    assert h.meta["ema"] == 0.9
    # the returned model holds the averaged weights: evaluating it gives the last logged accuracy
    again = engine.evaluate(model, "cpu", loaders.test)
    assert again["correct"] == h.test_correct[-1]
    # the checkpoint holds the averaged weights too, and loads back as the registered model
    saved = models.load(tmp_path / "last.pt")
    assert saved.registry_name == "final"
    assert engine.evaluate(saved, "cpu", loaders.test)["correct"] == h.test_correct[-1]


def test_recipe_augment_matches_the_course_rotation_and_adds_shift_and_zoom():
    final = recipes.get_recipe("final").make_augment()
    assert final.degrees == (-7.0, 7.0) and final.translate is None and final.scale is None
    assert recipes.get_recipe("batchnorm").make_augment() is None
    richer = recipes.get_recipe("final").with_(translate=0.1, scale=0.1).make_augment()
    assert richer.translate == (0.1, 0.1) and richer.scale == (0.9, 1.1)
    # 05 and 06 bend the digits too (the mild elastic distortion); 07's search predates it
    assert final.elastic == recipes.ELASTIC_ALPHA == 16.0
    assert recipes.get_recipe("augmentation").make_augment().elastic == 16.0
    assert recipes.get_recipe("final").classic_transform()["elastic"] == 16.0  # the textbook twin (torchvision's)
    assert recipes.STRETCH_START.make_augment().elastic == 0.0  # 07's first recipe: rotation alone
    assert recipes.get_recipe("stretch").make_augment().elastic == 16.0  # its chosen one: 05's augmentation
    plain = recipes.get_recipe("final").with_(elastic=0.0).make_augment()
    assert plain.elastic == 0.0 and plain.degrees == (-7.0, 7.0)


def history_with(accs, params=3000):
    h = History(meta={"params": params})
    for i, a in enumerate(accs, 1):
        h.add(epoch=i, test_acc=a)
    return h


@pytest.mark.parametrize("accs, met", [
    ([99.0, 99.2, 99.3, 99.41, 99.45, 99.40], True),     # reached at 4, held
    ([99.0, 99.2, 99.3, 99.35, 99.38, 99.40], True),     # reached at 6 (the last)
    ([99.0, 99.2, 99.3, 99.45, 99.39, 99.42], True),     # held from 6 on: reached by 6
    ([99.0, 99.2, 99.3, 99.45, 99.45, 99.39], False),    # dropped in the last epoch
    ([99.0] * 6 + [99.5], False),                        # 7 epochs: not held from epoch <= 6
])
def test_stretch_target_needs_99_4_by_epoch_6_held_to_the_end(accs, met):
    ok, line = recipes.target_report(history_with(accs), target=recipes.STRETCH_TARGET)
    assert ok is met, line
    assert line.startswith(f"Stretch target {'MET' if met else 'NOT MET'}")


def test_stretch_target_counts_parameters():
    ok, line = recipes.target_report(history_with([99.5] * 6, params=3600), target=recipes.STRETCH_TARGET)
    assert not ok and "3,600 parameters not < 3,600" in line


def test_run_on_the_validation_split_logs_validation(capsys):
    recipe = recipes.get_recipe("final").with_(epochs=1, batch_size=32, hold_epochs=0)  # one epoch: no hold
    settings = recipes.RunSettings(1, train_limit=512, test_limit=100)
    r = recipes.run(recipe, 3, device="cpu", settings=settings, valid_size=1000, progress=False)
    out = capsys.readouterr().out
    assert "Validation set: Average loss" in out and "Test set" not in out
    assert r.history.test_total == [1000] and r.history.meta["valid_size"] == 1000
    assert len(r.loaders.train.images) == 512 and len(r.history.batch_lr) == 16


def test_run_trains_with_a_design_searchs_own_augmentation():
    """``recipes.run(augment=...)`` (tools/final_design.py's slant and bilinear candidates) uses the
    augmentation it is given instead of the recipe's, and only on the fast path."""
    recipe = recipes.get_recipe("final").with_(hold_epochs=0, batch_size=32)  # one epoch: no hold
    slant = augment.RandomAffine(degrees=7.0, shear=10.0)
    settings = recipes.RunSettings(1, train_limit=256, test_limit=100)
    r = recipes.run(recipe, 1, device="cpu", settings=settings, augment=slant, progress=False, verbose=False)
    assert r.loaders.train.augment is slant and len(r.history.test_acc) == 1
    plain = recipes.run(recipe, 1, device="cpu", settings=settings, progress=False, verbose=False)
    assert plain.loaders.train.augment == recipe.make_augment()  # without it, the recipe's own
    with pytest.raises(ValueError, match="fast path only"):
        recipes.run(recipe, 1, device="cpu", fast=False, settings=settings, augment=slant)


def test_shift_and_zoom_need_the_fast_loader():
    recipe = recipes.get_recipe("final").with_(translate=0.1)
    with pytest.raises(ValueError, match="fast loader"):
        recipes.run(recipe, 1, device="cpu", fast=False, settings=recipes.RunSettings(1, 64, 64))


def test_stretch_model_is_under_3600_parameters_with_the_planned_receptive_field():
    from eva_utils.rf import rf_table

    model = models.build("stretch")
    assert engine.count_parameters(model) == 3_500 < recipes.STRETCH_TARGET.params
    table = rf_table(model, (1, 28, 28))
    rf = {row.module: row.rf for row in table}
    # the block comments' numbers: RF 5 before the pool, 6 after it, 10 / 14 / 18 / 22 through block 2
    assert (rf["conv2.1.2"], rf["pool1"], rf["conv3.1.2"], rf["conv4.1.2"], rf["conv5.1.2"], rf["conv6.1.2"]) == (
        5, 6, 10, 14, 18, 22)
    assert table.final_rf >= 28  # after GAP every output sees the whole digit
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="28x28"):
        model(torch.zeros(2, 1, 32, 32))
    # every 3x3 after conv1 is depthwise (groups = its input channels); the ablation's plain twin has none
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert [m.groups for m in depthwise] == [10, 10, 22, 22, 22]
    plain = models.build("stretch", widths=(6, 9, 6, 9), separable=False)
    assert engine.count_parameters(plain) == 3_471 and all(
        m.groups == 1 for m in plain.modules() if isinstance(m, torch.nn.Conv2d))


def test_frontier_sizes_are_what_their_names_say():
    sizes = {"~2k": 2000, "~3k": 3000, "~3.5k (the chosen)": 3500, "~5k": 5000, "~8k": 8000}
    for name, kwargs in recipes.stretch_frontier().items():
        params = engine.count_parameters(models.build("stretch", **kwargs))
        assert abs(params - sizes[name]) / sizes[name] < 0.1, (name, params)
    assert recipes.stretch_frontier()["~3.5k (the chosen)"]["widths"] == models.build("stretch").widths


def _tool(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_registered_stretch_recipe_and_model_are_the_design_runs_choice():
    """Notebook 07 trains what tools/stretch_design.py chose on the validation split; the CLI's
    ``--model stretch`` is exactly that row (recipe, and the same weights drawn from a seed)."""
    tool = _tool("stretch_design")
    recipe, factory = tool.CANDIDATES[tool.CHOSEN]
    assert recipe == recipes.get_recipe("stretch")
    engine.seed_everything(1)
    chosen = factory()
    engine.seed_everything(1)
    registered = models.build("stretch")
    assert all(torch.equal(a, b) for a, b in zip(chosen.state_dict().values(), registered.state_dict().values()))
    # 07's first row is 07's first recipe on its first layout, as it ran
    start, first = tool.CANDIDATES["start_w16"]
    assert start == recipes.STRETCH_START and engine.count_parameters(first()) == 3_332


def test_design_tool_rows_rerun_as_they_ran_and_its_chosen_row_is_the_course_final():
    """tools/final_design.py's rows are defined from the recipe before the distortion was adopted, so
    ``python tools/final_design.py final_precise_bn 5`` still trains what notebook 06's tables show;
    the ninth round's winner is exactly the course's final recipe (the name aside)."""
    tool = _tool("final_design")
    final = recipes.get_recipe("final")
    assert tool.CANDIDATES["final_elastic_16"][0] == final
    assert tool.CANDIDATES["final_precise_bn"][0] == final.with_(elastic=0.0)
    assert tool.CANDIDATES["final_hold_2"][0] == final.with_(elastic=0.0, precise_bn=0)
    assert tool.CANDIDATES["onecycle"][0] == final.with_(elastic=0.0, precise_bn=0, hold_epochs=0)
    assert all(c[0].elastic == 0.0 for n, c in tool.CANDIDATES.items()
               if not callable(c) and not n.startswith("final_elastic"))


def test_notebook_07s_try_this_predictions_hold():
    """What notebook 07's "Try this" tells a student to expect from each change, built and checked."""
    from eva_utils.models import SeparableConv
    from eva_utils.rf import rf_table

    chosen = engine.count_parameters(models.Stretch())
    # 1. plain 3x3s at the chosen widths: about five times the parameters, over even the 8,000 budget
    plain = engine.count_parameters(models.Stretch(separable=False))
    assert 4.5 < plain / chosen < 5.5 and plain > recipes.TARGET_PARAMS
    # 2. the frontier's ~5k point
    assert engine.count_parameters(models.Stretch(widths=(12, 28, 12, 28))) == 5_048

    # 3. the max-pool one layer later: a third separable 3x3 (24 -> 24) before it
    class PoolLater(models.Stretch):
        def __init__(self):
            super().__init__()
            self.conv2b = SeparableConv(24, 24, padding=0)                # 24 -> 22 | RF 7

        def forward(self, x):
            x = self.trans1(self.pool1(self.conv2b(self.conv2(self.conv1(x)))))
            x = self.conv6(self.conv5(self.conv4(self.conv3(x))))
            return torch.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)

    later = PoolLater()
    assert engine.count_parameters(later) - chosen == 840
    table = rf_table(later, (1, 28, 28))
    rf = {row.module: row.rf for row in table}
    assert rf["pool1"] == 8 and {r.module: r.rf for r in rf_table(models.Stretch(), (1, 28, 28))}["pool1"] == 6
    shapes = {row.module: row.output_shape for row in table}
    assert tuple(shapes["conv6.1.2"])[-2:] == (3, 3)  # block 2 ends on a 3x3 map instead of 4x4


def test_a_run_saves_the_steps_record_only_for_the_steps_own_model(monkeypatch):
    """``recipes.run`` saves ``results/<step>.json`` by default for the course step's own run; a
    student's other widths (notebook 07's Try #2) or ``model_kwargs`` must not replace it. The check
    that tells them apart draws no random numbers (the dropout and the batches stay the run's)."""
    recipe = recipes.get_recipe("stretch")
    full = recipes.RunSettings(recipe.epochs)
    assert recipes.saved_as(recipe, full) == "07_stretch"
    assert recipes.saved_as(recipe, full, custom_model=True) is None
    assert recipes.saved_as(recipe, full, custom_model=True, save=True) == "07_stretch"  # asked for: saved
    own, wider = models.Stretch(), models.Stretch(widths=(12, 28, 12, 28))
    state = torch.random.get_rng_state()
    assert recipes.is_registered_model(own, recipe) and not recipes.is_registered_model(wider, recipe)
    assert torch.equal(torch.random.get_rng_state(), state)
    seen = []
    monkeypatch.setattr(recipes, "saved_as", lambda *a, **k: seen.append(k["custom_model"]))
    tiny = recipes.RunSettings(1, train_limit=256, test_limit=100)
    for model, kwargs in ((models.Stretch(), None), (models.Stretch(widths=(8, 16, 8, 16)), None),
                          (None, {"widths": (8, 16, 8, 16)})):
        recipes.run(recipe.with_(precise_bn=0, batch_size=32), 1, device="cpu", settings=tiny, model=model,
                    model_kwargs=kwargs, progress=False, verbose=None)
    assert seen == [False, True, True]


def test_the_third_rounds_layouts_keep_the_budget_and_share_what_they_say():
    """tools/stretch_design.py's third round spends the same budget differently: every candidate is
    under 3,600 parameters, a shared conv's weights are counted once and used by every application,
    and the late-pool layouts end on the map their names give the GAP."""
    tool = _tool("stretch_design")
    third = [n for n in tool.CANDIDATES if n.startswith(("late_pool", "shared_", "headless"))]
    assert len(third) == 6
    for name in third:
        model = tool.CANDIDATES[name][1]()
        assert engine.count_parameters(model) < recipes.STRETCH_TARGET.params, name
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10), name

    shared = tool.SharedBlock2((10, 24, 10, 36))
    separate = models.Stretch(widths=(10, 24, 10, 36))
    # the two applications saved: a depthwise 3x3 and a 36 x 36 1x1 each (their BatchNorms stay)
    assert engine.count_parameters(separate) - engine.count_parameters(shared) == 2 * (9 * 36 + 36 * 36)
    calls = []
    shared.pointwise.register_forward_hook(lambda *_: calls.append(1))
    shared(torch.rand(2, 1, 28, 28))
    assert len(calls) == 3
    four = tool.SharedBlock2((10, 24, 10, 36), applications=4)
    assert four.pads == [1, 0, 0, 0] and len(four.norms) == 4 and len(four.depthwise) == 1
    own = tool.SharedBlock2((10, 24, 10, 31), own_depthwise=True)
    assert len(own.depthwise) == 3 and engine.count_parameters(own) == 3_504

    late = tool.LatePool(10, (16, 16), 10, (21,) * 4)
    assert late.body(torch.rand(1, 1, 28, 28)).shape[-2:] == (3, 3)

    # the skips add no parameters; the bilinear rows change only how the same warp is resampled
    assert engine.count_parameters(tool.ResidualStretch()) == engine.count_parameters(models.Stretch())
    recipe, _, warp = tool.CANDIDATES["all_separable_w22_ema_bilinear"]
    assert recipe == recipes.get_recipe("stretch") and warp().mode == "bilinear"
    assert (warp().degrees, warp().elastic) == (recipe.make_augment().degrees, recipe.make_augment().elastic)
