"""The train/test engine: it learns, it repeats with a seed, it logs like the course."""
import re

import pytest
import torch
import torch.nn as nn

from eva_utils import augment, data, devices, engine, models, recipes


def tiny_loaders(n_train=256, n_test=256, rotation=0.0, seed=0, batch_size=64):
    return data.loaders(batch_size, device="cpu", seed=seed, test_batch_size=256,
                        augment=augment.RandomAffine(degrees=rotation) if rotation else None,
                        splits=data.Splits(train_limit=n_train, test_limit=n_test))


def test_engine_overfits_256_real_samples_to_100_percent():
    engine.seed_everything(0)
    loaders = tiny_loaders()
    model = models.build("batchnorm")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    history = engine.fit(model, 30, loaders.train, loaders.train, optimizer,
                         progress=False, verbose=False, speed=engine.Speed(precision="fp32"))
    assert history.test_acc[-1] == 100.0  # evaluated on the same 256 training images
    assert history.train_loss[-1] < history.train_loss[0]


def run_history(seed):
    engine.seed_everything(seed)
    loaders = tiny_loaders(512, 200, rotation=7.0, seed=seed)
    model = models.build("final")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    h = engine.fit(model, 2, loaders.train, loaders.test, optimizer, progress=False, verbose=False)
    return {k: v for k, v in h.to_dict().items() if k not in ("seconds", "meta")}


def test_two_cpu_runs_with_one_seed_repeat_exactly():
    first, second = run_history(7), run_history(7)
    assert first == second
    assert run_history(8) != first


def test_test_prints_the_course_line(capsys):
    loaders = tiny_loaders(64, 500)
    result = engine.test(models.build("final"), "cpu", loaders.test)
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"Test set: Average loss: \d+\.\d{4}, Accuracy: \d+/500 \(\d+\.\d{2}%\)", line)
    assert f"{result['correct']}/500" in line


def test_progress_bar_reads_like_the_course_logs(capsys):
    loaders = tiny_loaders(256, 64)
    model = models.build("final")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    engine.train(model, "cpu", loaders.train, optimizer, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"Loss=\d\.\d{4} Batch_id=3 Accuracy=\d+\.\d{2}", err)


def test_onecycle_steps_per_batch_and_l1_and_clip():
    engine.seed_everything(0)
    loaders = tiny_loaders(256, 64)
    model = models.build("final")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=2,
                                                    steps_per_epoch=len(loaders.train))
    h = engine.fit(model, 2, loaders.train, loaders.test, optimizer, scheduler,
                   step=engine.StepOptions(l1=1e-5, clip_grad=1.0), progress=False, verbose=False)
    assert len(h.batch_lr) == 2 * len(loaders.train)
    assert max(h.batch_lr) == pytest.approx(0.1, rel=0.05)
    assert len(set(h.batch_lr)) == len(h.batch_lr)  # a new LR at every step


def test_per_epoch_scheduler_changes_the_lr():
    loaders = tiny_loaders(128, 64)
    model = models.build("final")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    h = engine.fit(model, 3, loaders.train, loaders.test, optimizer, scheduler, progress=False, verbose=False)
    assert h.lr == pytest.approx([0.1, 0.05, 0.025])


def test_checkpoints_are_written_and_load_in_eval_mode(tmp_path):
    loaders = tiny_loaders(128, 64)
    model = models.build("final")
    h = engine.fit(model, 2, loaders.train, loaders.test, checkpoints=engine.Checkpoints(tmp_path), progress=False,
                   verbose=False)
    assert {p.name for p in tmp_path.iterdir()} == {"last.pt", "best.pt"}
    loaded = models.load(tmp_path / "last.pt")
    assert not loaded.training
    x = next(iter(loaders.test))[0]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    assert len(h) == 2


@pytest.mark.parametrize("epochs", [0, -3, 2.5])
def test_impossible_epoch_counts_are_refused(epochs):
    loaders = tiny_loaders(64, 64)
    with pytest.raises(ValueError, match="epochs"):
        engine.fit(models.build("final"), epochs, loaders.train, loaders.test, progress=False)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*final"):
        models.build("resnet")


def test_unreadable_checkpoint_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable eva_utils checkpoint"):
        models.load(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an eva_utils checkpoint"):
        models.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        models.load(tmp_path / "missing.pt")


def test_wrong_image_size_is_refused():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*got \(2, 1, 32, 32\)"):
        models.build("final")(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="channel"):
        models.build("skeleton")(torch.zeros(2, 3, 28, 28))


def test_device_choice():
    assert engine.pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert engine.pick_device() in (torch.device("cpu"), torch.device("mps"))
        with pytest.raises(ValueError, match="cuda"):
            engine.pick_device("cuda")


def test_speed_switches_resolve_per_device():
    cpu = engine.Speed().resolve("cpu")
    assert cpu.channels_last is False and cpu.precision == engine.auto_precision("cpu")
    assert engine.Speed.textbook().autocast_dtype(torch.device("cpu")) is None
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        engine.Speed(precision="half")


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
@pytest.mark.parametrize("gpu, capability, expected", [
    ("T4", (7, 5), "fp16"), ("V100", (7, 0), "fp16"), ("P100", (6, 0), "fp16"),
    ("A100", (8, 0), "bf16"), ("H100", (9, 0), "bf16"), ("K80", (3, 7), "fp32"),
])
def test_cuda_precision_follows_the_compute_capability(monkeypatch, gpu, capability, expected):
    # torch.cuda.is_bf16_supported() says True on a T4 (it counts emulation): not asked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert engine.auto_precision("cuda") == expected
    speed = engine.Speed().resolve("cuda")
    assert speed.precision == expected and speed.channels_last is True
    dtype = speed.autocast_dtype("cuda")
    assert dtype == {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[expected]
    assert (engine.grad_scaler("cuda", dtype) is not None) == (expected == "fp16")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_cpu_precision_needs_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert engine.auto_precision("cpu") == expected
    assert engine.Speed().resolve("cpu").precision == expected
    assert engine.auto_precision("mps") == "fp32"


@pytest.mark.parametrize("flags, expected", [
    ({"avx512_bf16": True, "amx_bf16": False}, True),   # Xeon (Cooper Lake+), EPYC Zen 4
    ({"avx512_bf16": False, "amx_bf16": True}, True),   # AMX only
    ({"avx512_f": True, "avx512_bf16": False}, False),  # AVX-512 without bf16: emulated
    ({}, False),                                         # AVX2 laptop, Apple silicon
])
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags, raising=False)
    assert devices.cpu_has_native_bf16() is expected


def test_evaluation_is_fp32_under_any_training_precision(monkeypatch):
    """The test line, the checkpoint and the misclassified grid count the same predictions."""
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((torch.is_autocast_enabled("cpu"), x.dtype))
            return torch.zeros(len(x), 10)

    loader = [(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))]
    engine.evaluate(Probe(), "cpu", loader, engine.Speed(precision="bf16"))
    assert seen == [(False, torch.float32)]


def test_fp16_training_uses_a_gradient_scaler_that_fit_keeps(monkeypatch):
    """fp16 (older GPUs): the loss is scaled; one scaler lives through all epochs. Run on the CPU."""
    made = []
    real = engine.grad_scaler

    def spy(device, dtype):
        scaler = real(device, dtype)
        made.append(scaler)
        return scaler

    monkeypatch.setattr(engine, "grad_scaler", spy)
    engine.seed_everything(0)
    loaders = tiny_loaders(256, 64)
    model = models.build("batchnorm")
    history = engine.fit(model, 2, loaders.train, loaders.test, device="cpu", progress=False, verbose=False,
                         speed=engine.Speed(precision="fp16"))
    assert len(made) == 1 and made[0] is not None and made[0].get_scale() > 0
    assert history.meta["precision"] == "fp16" and all(l == l for l in history.train_loss)  # no NaN


def test_onecycle_with_too_few_steps_says_what_to_do():
    recipe = recipes.get_recipe("final")
    with pytest.raises(ValueError, match="OneCycleLR needs more steps than 4"):
        recipe.make_optimizer(models.build("final"), 4, 3)  # 3 epochs: 1 in the cycle + the 2 held


def test_hold_epochs_end_the_cycle_early_and_keep_its_floor():
    """A recipe's hold_epochs: OneCycle runs over the first epochs, then the LR stays at its floor
    (start LR / 100) and fit still steps the pair once per batch."""
    engine.seed_everything(0)
    loaders = tiny_loaders(256, 64)  # 4 batches per epoch
    recipe = recipes.get_recipe("final").with_(hold_epochs=1)
    model = models.build("final")
    optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), 3)
    h = engine.fit(model, 3, loaders.train, loaders.test, optimizer, scheduler, progress=False, verbose=False)
    cycle, held = h.batch_lr[:8], h.batch_lr[8:]
    assert len(h.batch_lr) == 12 and max(cycle) == pytest.approx(recipe.max_lr, rel=0.05)
    assert held == pytest.approx([recipe.lr / 100] * 4)
    assert cycle[-2] > cycle[-1] == pytest.approx(held[0])  # the cycle anneals onto the floor, which holds


def test_hold_epochs_must_leave_the_cycle_an_epoch():
    recipe = recipes.get_recipe("final").with_(hold_epochs=15)
    with pytest.raises(ValueError,
                       match="holds its LR at the floor for the last 15 epochs.*at least 16 epochs, not 15"):
        recipe.make_optimizer(models.build("final"), 100, 15)


def test_onecycle_cycles_the_momentum_so_a_recipes_own_is_refused():
    """OneCycleLR overwrites SGD's momentum (0.95 -> 0.85 -> 0.95) at every step: a recipe that
    asks for another momentum under it would train exactly as if it had not, so it is refused."""
    recipe = recipes.get_recipe("final")
    optimizer, scheduler = recipe.make_optimizer(models.build("final"), 100, 15)
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)  # the cycle's, set at once
    with pytest.raises(ValueError, match="sets momentum=0.95, but OneCycleLR cycles"):
        recipe.with_(momentum=0.95).make_optimizer(models.build("final"), 100, 15)
    with pytest.raises(ValueError, match="OneCycleLR cycles"):
        recipes.run(recipe.with_(momentum=0.8), progress=False, verbose=False)  # before any data
    constant = recipes.get_recipe("augmentation").with_(momentum=0.8)  # no schedule: it is used
    assert constant.make_optimizer(models.build("final"), 100)[0].param_groups[0]["momentum"] == 0.8


def test_bn_momentum_reaches_every_batchnorm_layer():
    model = models.build("final")
    assert recipes.set_bn_momentum(model, 0.01) == 7
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.01}
    with pytest.raises(ValueError, match="bn_momentum must be in"):
        recipes.set_bn_momentum(model, 0.0)


def test_bn_loader_holds_the_first_training_images_unaugmented_and_draws_no_random_numbers():
    loaders = data.loaders(64, device="cpu", seed=3, augment=augment.RandomAffine(degrees=7.0),
                           splits=data.Splits(train_limit=300, test_limit=64, bn_images=200))
    first, again = torch.cat([x for x, _ in loaders.bn]), torch.cat([x for x, _ in loaders.bn])
    assert first.shape == (200, 1, 28, 28) and torch.equal(first, again)  # fixed order, no augmentation
    expected = data.Normalize(loaders.mean, loaders.std)(loaders.train.images[:200].float() / 255)
    assert torch.allclose(first, expected)
    state = loaders.train.generator.get_state()
    list(loaders.bn)
    assert torch.equal(loaders.train.generator.get_state(), state)  # training's draws untouched
    assert len(data.loaders(64, device="cpu",
                            splits=data.Splits(train_limit=100, test_limit=64, bn_images=500)).bn.images) == 100
    assert data.loaders(64, device="cpu", splits=data.Splits(train_limit=100, test_limit=64)).bn is None
    with pytest.raises(ValueError, match="bn_images must be a whole number of images, 0 or more, got -1"):
        data.loaders(64, device="cpu", splits=data.Splits(train_limit=100, test_limit=64, bn_images=-1))


def test_precise_bn_scores_the_weights_with_their_own_statistics_and_leaves_training_as_it_was():
    """With a bn_loader, fit recomputes BatchNorm's statistics before each evaluation: the first
    BN layer's running mean is then the exact channel mean of conv1's outputs over those images,
    and the training (losses, accuracies, LRs) is the same as without it."""
    def run(precise):
        engine.seed_everything(0)
        loaders = data.loaders(64, device="cpu", seed=0, augment=augment.RandomAffine(degrees=7.0),
                               splits=data.Splits(train_limit=256, test_limit=128, bn_images=128 if precise else 0))
        model = models.build("final")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        h = engine.fit(model, 2, loaders.train, loaders.test, optimizer, progress=False, verbose=False,
                       speed=engine.Speed(precision="fp32"), evaluation=engine.EvalOptions(bn_loader=loaders.bn))
        return model, h, loaders

    plain_model, plain, _ = run(False)
    model, precise, loaders = run(True)
    assert precise.train_loss == plain.train_loss and precise.train_acc == plain.train_acc
    assert precise.batch_lr == plain.batch_lr and precise.meta["precise_bn"] == 128
    assert "precise_bn" not in plain.meta
    conv1 = model.conv1[0]  # conv_block: Conv2d, BatchNorm2d, ReLU
    with torch.no_grad():
        outputs = conv1(torch.cat([x for x, _ in loaders.bn]))
    assert torch.allclose(model.conv1[1].running_mean, outputs.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not torch.allclose(plain_model.conv1[1].running_mean, model.conv1[1].running_mean, atol=1e-3)
    # the last test line scores the returned model as it is
    assert engine.evaluate(model, "cpu", loaders.test)["acc"] == precise.test_acc[-1]


def test_a_recipe_with_precise_bn_needs_its_clean_images():
    recipe = recipes.get_recipe("final").with_(precise_bn=1000)
    with pytest.raises(ValueError, match="precise_bn=1000.*bn_images=1000"):
        recipe.eval_options(None)
    loaders = data.loaders(64, device="cpu", splits=data.Splits(train_limit=100, test_limit=64, bn_images=1000))
    assert recipe.eval_options(loaders).bn_loader is loaders.bn
    assert recipes.get_recipe("final").eval_options(loaders).bn_loader is loaders.bn  # 06's adopts it
    assert recipes.get_recipe("augmentation").eval_options(loaders).bn_loader is None


def test_recompute_bn_keeps_dropout_off_and_the_random_generator_untouched():
    engine.seed_everything(0)
    model = models.build("regularizer")  # dropout 0.05 after each 3x3
    loaders = data.loaders(64, device="cpu", splits=data.Splits(train_limit=128, test_limit=64, bn_images=128))
    model.train()
    state = torch.random.get_rng_state()
    assert engine.recompute_bn(model, loaders.bn) == 128
    assert torch.equal(torch.random.get_rng_state(), state) and model.training
    once = [b.clone() for b in model.buffers()]
    engine.recompute_bn(model, loaders.bn)
    assert all(torch.equal(a, b) for a, b in zip(once, model.buffers()))  # exact, so it repeats
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}


def test_a_run_with_precise_bn_records_its_clean_images():
    """A recipe with precise BN recomputes BatchNorm's statistics before each evaluation; its run
    records how many clean images they came from (all the training images, when there are fewer)."""
    recipe = recipes.get_recipe("final").with_(hold_epochs=0, precise_bn=10_000, batch_size=32)
    settings = recipes.RunSettings(1, train_limit=256, test_limit=64, quick=True)
    h = recipes.run(recipe, 1, device="cpu", settings=settings, progress=False, verbose=False).history
    assert h.meta["precise_bn"] == 256
