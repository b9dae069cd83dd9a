"""The edges of every command-line input and save path (issue 32): special files, `~`, full
disks, killed saves, bad histories, crafted checkpoints, bounds, quick mode and Ctrl-C.

Each test reproduces one reported fault on tiny data (real files, FIFOs, device nodes, links,
real processes and signals where the fault is about them) and checks the one-line answer.
"""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from eva_utils import cli, data, datasets, engine, fsutil, histories, models, recipes, report

TINY = ["--model", "batchnorm", "--epochs", "1", "--train-limit", "512", "--test-limit", "200", "--no-progress"]


def one_error_line(stderr: str) -> str:
    """The whole of stderr is one line starting with `error: `; returns it."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def usage_error(stderr: str) -> str:
    """An argparse usage error: its last line, `...: error: argument --flag: ...`."""
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


def run_cli(*args, env=None, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]), **(env or {}))
    return subprocess.run([sys.executable, "-m", "eva_utils", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was refused")
    monkeypatch.setattr(recipes, "run", refuse)


def fake_history(accs=(99.0,), params=7_972, total=200):
    n = len(accs)
    return engine.History(epoch=list(range(1, n + 1)), train_loss=[0.1] * n, train_acc=[99.0] * n,
                          test_loss=[0.02] * n, test_acc=list(accs), test_correct=[total] * n,
                          test_total=[total] * n, lr=[0.01] * n, seconds=[1.0] * n, meta={"params": params})


@pytest.fixture
def fake_run(monkeypatch):
    """recipes.run without training: records the settings it was given."""
    calls = []

    def run(recipe, seed, **kw):
        calls.append(kw)
        return recipes.Run(models.build(recipe.model), fake_history(), None, recipe, seed)
    monkeypatch.setattr(recipes, "run", run)
    return calls


# ----------------------------------------------------------------------------- 1. special files


def special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.pt"
    (tmp_path / "real.pt").write_bytes(b"old")
    link.symlink_to(tmp_path / "real.pt")
    files = {"fifo": (fifo, "a FIFO"), "link": (link, "a symbolic link")}
    try:
        node = tmp_path / "null"
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        files["device"] = (node, "a character device")
    except PermissionError:  # not root: no device node to test with
        pass
    return files


@pytest.mark.parametrize("which", ["fifo", "link", "device"])
def test_save_over_a_special_file_is_refused_before_training(tmp_path, capsys, no_training, which):
    files = special_files(tmp_path)
    if which not in files:
        pytest.skip("creating a device node needs root")
    path, kind = files[which]
    mode = os.lstat(path).st_mode
    assert cli.main(["train", *TINY, "--save", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--save {path} is {kind}" in line and "not a regular file" in line
    assert os.lstat(path).st_mode == mode  # still the FIFO, link or device it was
    if which == "link":
        assert (tmp_path / "real.pt").read_bytes() == b"old"


def test_save_to_a_fifo_is_refused_by_a_real_process_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_cli("train", *TINY, "--save", str(fifo))
    assert r.returncode == 2 and "EPOCH" not in r.stdout
    assert "is a FIFO (named pipe), not a regular file" in one_error_line(r.stderr)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_checkpoint_dir_holding_a_fifo_or_link_is_refused(tmp_path, capsys, no_training):
    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    os.mkfifo(ckpt / "last.pt")
    assert cli.main(["train", *TINY, "--checkpoint-dir", str(ckpt)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds a FIFO (named pipe) last.pt" in line and str(ckpt) in line


def test_the_library_never_saves_over_a_special_file(tmp_path):
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        engine.save_checkpoint(fifo, models.build("batchnorm"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ----------------------------------------------------------------------------- 2. ~ expanded once


def test_tilde_in_save_and_checkpoint_dir_is_the_path_written(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    r = run_cli("train", *TINY, "--save=~/f.pt", "--checkpoint-dir=~/ck", env={"HOME": str(home)}, cwd=work)
    assert r.returncode == 0, r.stderr
    assert (home / "f.pt").is_file() and (home / "ck" / "last.pt").is_file()
    assert list(work.iterdir()) == []  # no ./~ folder
    assert f"Saved {home / 'f.pt'}" in r.stdout


def test_tilde_under_a_file_is_refused_before_training(tmp_path, monkeypatch, capsys, no_training):
    home = tmp_path / "file"
    home.write_text("a file, not a folder")
    monkeypatch.setenv("HOME", str(home))
    assert cli.main(["train", *TINY, "--save=~/f.pt"]) == 2
    assert f"{home}/f.pt" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("value, expected", [("~/r", "HOME/r"), ("  ", "results"), ("", "results")])
def test_eva_results_expands_tilde_and_blank_means_unset(tmp_path, monkeypatch, value, expected):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(histories.RESULTS_ENV, value)
    assert histories.history_dir() == Path(expected.replace("HOME", str(tmp_path)))


# ----------------------------------------------------------------------------- 4, 9. results/<step>.json


def shipped(step: str) -> bytes:
    return (histories.course_results() / f"{step}.json").read_bytes()


def test_another_steps_history_is_not_shown_as_this_step(tmp_path, capsys):
    (tmp_path / "04_regularizer.json").write_bytes(shipped("01_skeleton"))
    h = histories.load_history("04_regularizer", tmp_path)
    assert h.meta["source"] == "course reference run" and h.meta["recipe"] == "04_regularizer"
    assert h.meta["params"] == 7_972
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and str(tmp_path / "04_regularizer.json") in line
    assert "a run of 01_skeleton, not of 04_regularizer" in line and "reference run" in line


def _edited(step: str, edit) -> bytes:
    d = json.loads(shipped(step))
    edit(d)
    return json.dumps(d).encode()


@pytest.mark.parametrize("content, why", [
    (lambda: shipped("03_batchnorm")[:700], "not valid JSON"),
    (lambda: b"", "not valid JSON"),
    (lambda: _edited("03_batchnorm", lambda d: d.pop("test_acc")), "missing test_acc"),
    (lambda: _edited("03_batchnorm", lambda d: d.update(extra=1)), "unexpected extra"),
    (lambda: b"[1, 2, 3]", "a JSON list"),
    (lambda: bytes(range(256)) * 4, "not text"),
    (lambda: _edited("03_batchnorm", lambda d: d["test_acc"].pop()), "'test_acc' has 14 entries for 15 epochs"),
    (lambda: _edited("03_batchnorm", lambda d: d.update(test_acc="high")), "'test_acc' is not a list of numbers"),
    (lambda: _edited("03_batchnorm", lambda d: d.update(meta=[])), "no parameter count"),
])
def test_a_bad_history_file_falls_back_to_the_reference_run_and_says_so(tmp_path, capsys, content, why):
    own = tmp_path / "03_batchnorm.json"
    own.write_bytes(content())
    h = histories.load_history("03_batchnorm", tmp_path)
    assert h.meta["source"] == "course reference run" and len(h) == 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"warning: {own} is not a usable history")
    assert why in err and "course's reference run" in err


def test_a_good_own_history_is_still_used(tmp_path, capsys):
    (tmp_path / "03_batchnorm.json").write_bytes(_edited("03_batchnorm", lambda d: d["test_acc"].__setitem__(0, 1.0)))
    h = histories.load_history("03_batchnorm", tmp_path)
    assert h.meta["source"] == str(tmp_path / "03_batchnorm.json") and h.test_acc[0] == 1.0
    assert capsys.readouterr().err == ""


def test_every_shipped_history_passes_the_check():
    """Each reference run is a well-formed history, and a course step's (``04_regularizer``,
    ``09_..._seed2``) records that step's own recipe: ``load_history`` checks a student's file
    against the reference run's recipe, so the reference runs must be right."""
    steps = sorted((r.name for r in recipes.RECIPES.values()), key=len, reverse=True)
    for path in histories.course_results().iterdir():
        if path.name.endswith(".json"):
            step = path.name[:-5]
            own = next((n for n in steps if step == n or step.startswith(n + "_")), None)
            histories.parse_history(path.read_bytes(), step, recipe=own)


# ----------------------------------------------------------------------------- 8. a full disk at the final save


@pytest.fixture
def full_folder(monkeypatch, tmp_path):
    """Writes into tmp_path/full fail with ENOSPC at fsync, as on a full disk."""
    full = tmp_path / "full"
    full.mkdir()
    real = os.fsync

    def fsync(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    return full


def test_full_disk_at_the_final_save_keeps_the_weights_elsewhere(tmp_path, full_folder, monkeypatch, capsys,
                                                                 fake_run):
    rescue = tmp_path / "tmp"
    rescue.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(rescue))
    assert cli.main(["train", *TINY, "--save", str(full_folder / "f.pt")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"no space left on {full_folder}" in line and "inline_container" not in line
    kept = [p for p in rescue.iterdir() if p.name.startswith("f.rescued-")]
    assert len(kept) == 1 and f"the trained weights were saved to {kept[0]} instead" in line
    assert models.load(kept[0]).registry_name == "batchnorm"
    assert list(full_folder.iterdir()) == []  # no temporary file left on the full disk


def test_full_disk_at_the_final_save_points_at_this_runs_last_checkpoint(tmp_path, full_folder, capsys):
    ckpt = tmp_path / "ck"
    assert cli.main(["train", *TINY, "--batch-size", "64", "--save", str(full_folder / "f.pt"),
                     "--checkpoint-dir", str(ckpt)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"no space left on {full_folder}" in line
    assert f"the trained weights are in {ckpt / 'last.pt'} (written after the last epoch)" in line
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 1


def test_a_real_full_tmpfs_says_no_space_and_keeps_the_weights(tmp_path):
    """Where the test may mount a 16 KB tmpfs (root, no container restriction): the real fault."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rescue = tmp_path / "tmp"
        rescue.mkdir()
        r = run_cli("train", *TINY, "--save", str(tiny / "f.pt"), env={"TMPDIR": str(rescue)})
        assert r.returncode == 2 and "Best test accuracy" not in r.stdout
        line = one_error_line(r.stderr)
        assert f"no space left on {tiny}" in line and "inline_container" not in line
        kept = next(rescue.glob("f.rescued-*.pt"))
        assert f"saved to {kept} instead" in line and models.load(kept).registry_name == "batchnorm"
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


# ----------------------------------------------------------------------------- 12. bad values, named


@pytest.mark.parametrize("args, flag, words", [
    (["train", "--seed", "-1"], "--seed", "must be between 0 and 4294967295"),
    (["train", "--seed", str(2**32)], "--seed", "must be between 0 and 4294967295"),
    (["seeds", "--seeds", f"1,{2**32}"], "--seeds", "seeds must be between 0 and 4294967295"),
    (["seeds", "--seeds=-1"], "--seeds", "seeds must be between 0 and 4294967295, got '-1'"),
    (["train", "--device", "meta"], "--device", "'meta' is not a device of this machine; choose one of: auto, cpu"),
    (["train", "--device", "tpu"], "--device", "'tpu' is not a device of this machine"),
    (["seeds", "--device", "mps"], "--device", "choose one of: auto, cpu"),
    (["bench", "--device", "meta"], "--device", "not a device of this machine"),
    (["train", "--classic", "--batch-size", str(10**20)], "--batch-size", "must be at most 65,536"),
])
def test_bad_values_are_usage_errors_naming_the_flag(args, flag, words, capsys):
    if "mps" in args and "mps" in cli.available_devices():
        pytest.skip("this machine has MPS")
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    line = usage_error(capsys.readouterr().err)
    assert f"argument {flag}: " in line and words in line


def test_bad_seed_and_device_are_refused_by_a_real_process_before_training():
    r = run_cli("train", *TINY, "--seed", "-1", "--device", "cpu")
    assert r.returncode == 2 and "argument --seed" in r.stderr and r.stdout == ""
    r = run_cli("train", *TINY, "--device", "meta")
    assert r.returncode == 2 and "argument --device" in r.stderr and r.stdout == ""


class FiveOutputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 5)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_model_with_the_wrong_output_width_is_refused_before_the_data_loads(monkeypatch):
    monkeypatch.setattr(data, "loaders", lambda *a, **k: pytest.fail("the data was loaded before the check"))
    with pytest.raises(ValueError) as err:
        recipes.run(recipes.get_recipe("batchnorm"), 1, model=FiveOutputs(), device="cpu",
                    settings=recipes.RunSettings(1, 512, 200))
    message = str(err.value)
    assert "shape (2, 5)" in message and "[batch, 10]" in message and "10 outputs" in message
    assert "\n" not in message and "out of bounds" not in message


def test_the_output_check_changes_nothing_the_training_sees():
    model = models.build("regularizer")  # dropout and BatchNorm: random draws and running statistics
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    models.check_output(model, datasets.MNIST)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"fails on a batch of CIFAR-10 images of shape \(2, 3, 32, 32\)"):
        models.check_output(model, datasets.CIFAR10)


# ----------------------------------------------------------------------------- 13, 14. bounds


@pytest.mark.parametrize("args, flag, words", [
    (["train", "--threads", "999"], "--threads", "must be at most"),
    (["seeds", "--threads", "999"], "--threads", "(the CPUs of this machine)"),
    (["train", "--epochs", "1001"], "--epochs", "must be at most 1,000"),
    (["seeds", "--seeds", "1-1001"], "--seeds", "at most 1,000 seeds per run"),
    (["seeds", "--seeds", "1-1000000000000"], "--seeds", ""),
    (["seeds", "--seeds", "1,1"], "--seeds", "seed 1 appears more than once in '1,1'"),
    (["seeds", "--seeds", "1-3,2"], "--seeds", "seed 2 appears more than once"),
])
def test_numbers_are_bounded(args, flag, words, capsys):
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2 and time.perf_counter() - start < 5  # no list of a trillion seeds
    line = usage_error(capsys.readouterr().err)
    assert f"argument {flag}: " in line and words in line


def test_threads_up_to_the_cpu_count_are_accepted():
    args = cli.build_parser().parse_args(["train", "--threads", str(os.cpu_count())])
    assert args.threads == os.cpu_count()


def test_a_run_too_short_for_the_schedule_names_epochs_before_the_header(capsys, no_training):
    assert cli.main(["train", "--model", "final", "--epochs", "2", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert "--epochs 2: recipe '06_optimizer' holds its LR" in one_error_line(err) and out == ""


@pytest.mark.parametrize("args, words", [
    (["--train-limit", "99999999999"], "--train-limit 99,999,999,999 is more than the 60,000 training images of MNIST"),
    (["--train-limit", "60000", "--valid", "100"], "(60,000 less the 100 of --valid); give at most 59,900"),
    (["--test-limit", "10001"], "--test-limit 10,001 is more than the 10,000 test images of MNIST"),
    (["--valid", "60000"], "--valid 60,000 leaves no training images"),
    (["--valid", "100", "--classic"], "--valid holds images out in the fast loader only: drop --classic"),
])
def test_sizes_beyond_the_dataset_are_refused_naming_the_flag(args, words, capsys, no_training):
    assert cli.main(["train", "--model", "batchnorm", "--no-progress", *args]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert words in line and "valid_size" not in line and "fast=True" not in line


# ----------------------------------------------------------------------------- 15. read-only $EVA_RESULTS


def test_a_notebook_checks_its_results_folder_at_the_start(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    monkeypatch.setenv(histories.RESULTS_ENV, str(blocker / "results"))
    monkeypatch.setenv("EVA_SMOKE", "0")
    with pytest.raises(ValueError, match=rf"^\$EVA_RESULTS: {blocker}/results cannot be created because "
                                         rf"{blocker} is a file"):
        report.start()
    monkeypatch.setenv("EVA_SMOKE", "1")  # quick mode writes nothing: nothing to check
    assert report.start("cpu") == torch.device("cpu")


def test_a_read_only_results_folder_is_refused_at_the_start(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv(histories.RESULTS_ENV, str(folder))
    assert histories.check_results_dir(quick=False) == folder and list(folder.iterdir()) == []

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(folder / "x.tmp"))
    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(OSError, match=rf"\$EVA_RESULTS: {folder} is not writable \(Read-only file system\)"):
        histories.check_results_dir(quick=False)
    assert histories.check_results_dir(quick=True) is None


def test_every_notebook_starts_with_one_call_and_repeats_no_bookkeeping():
    """``eva_utils.start()`` checks the results folder before anything trains; ``recipes.run``
    records the device and saves the step's history itself, so no cell repeats either."""
    for nb in sorted((Path(__file__).parents[1] / "notebooks").glob("0*.py")):
        text = nb.read_text()
        assert "device = eva_utils.start()" in text, nb.name
        for bookkeeping in ("save_history(", "device_description(", "start_notebook(", "run_header("):
            assert bookkeeping not in text, f"{nb.name}: {bookkeeping}"


# ----------------------------------------------------------------------------- 16. SIGKILL during a save


def test_a_save_killed_by_sigkill_leaves_a_temp_file_the_next_save_removes(tmp_path):
    target = tmp_path / "last.pt"
    script = ("import sys, time\nfrom eva_utils import fsutil\n"
              "with fsutil.atomic_open(sys.argv[1]) as fh:\n"
              "    fh.write(b'x' * 100000); fh.flush(); print('writing', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = list(tmp_path.glob("last.pt.*.tmp"))
    assert len(left) == 1 and not target.exists()  # the fault: a temporary file nobody removes
    fresh = tmp_path / "last.pt.abcd1234.tmp"  # a writer still at work: young, kept
    fresh.write_bytes(b"y")
    old = time.time() - 3600
    os.utime(left[0], (old, old))
    engine.save_checkpoint(target, models.build("batchnorm"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", fresh.name])
    assert models.load(target).registry_name == "batchnorm"


def test_remove_stale_temps_removes_only_old_temp_files_of_atomic_open(tmp_path):
    old = time.time() - 3600
    names = {"h.json.abcd_123.tmp": True, "notes.tmp": False, "h.json.abcd1234.tmp.keep": False,
             "other.json.zz99zz99.tmp": True}
    for name in names:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / "dir.abcdefgh.tmp").mkdir()
    (tmp_path / "link.abcdefgh.tmp").symlink_to(tmp_path / "notes.tmp")
    removed = fsutil.remove_stale_temps(tmp_path, ["h.json"])
    assert removed == [tmp_path / "h.json.abcd_123.tmp"]
    removed = fsutil.remove_stale_temps(tmp_path)
    assert removed == [tmp_path / "other.json.zz99zz99.tmp"]
    assert (tmp_path / "dir.abcdefgh.tmp").is_dir() and (tmp_path / "link.abcdefgh.tmp").is_symlink()
    assert fsutil.remove_stale_temps(tmp_path / "missing") == []


def test_saving_a_history_removes_a_stale_temp_file(tmp_path):
    stale = tmp_path / "03_batchnorm.json.k1ll3d00.tmp"
    stale.write_text("{")
    os.utime(stale, (time.time() - 3600,) * 2)
    histories.save_history(fake_history(), "03_batchnorm", results_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["03_batchnorm.json"]


# ----------------------------------------------------------------------------- 17. crafted checkpoints


def test_a_crafted_checkpoint_asking_for_huge_layers_is_refused_without_allocating(tmp_path):
    path = tmp_path / "crafted.pt"
    engine.save_checkpoint(path, models.build("stretch"))
    state = torch.load(path, weights_only=True)
    state["model_kwargs"] = {"widths": (30_000,) * len(models.build("stretch").widths)}
    torch.save(state, path)
    assert path.stat().st_size < 40_000
    script = ("import resource, sys\nfrom eva_utils import models\n"
              "try:\n    models.load(sys.argv[1])\nexcept ValueError as err:\n    print(err)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    message, peak_kb = r.stdout.strip().splitlines()
    assert f"{path}: its weights do not fit model 'stretch'" in message and "size mismatch" in message
    assert int(peak_kb) < 3_000_000  # far below the 32 GB the arguments ask for


# ----------------------------------------------------------------------------- 19. quick mode


@pytest.mark.parametrize("value, quick", [("", False), ("0", False), ("off", False), ("n", False), ("No", False),
                                          ("1", True), ("yes", True), ("y", True), (" ON ", True)])
def test_eva_smoke_values(monkeypatch, value, quick):
    monkeypatch.setenv("EVA_SMOKE", value)
    assert recipes.quick_mode() is quick


def test_an_unknown_eva_smoke_value_is_one_line_naming_it(capsys, no_training):
    r = run_cli("train", *TINY, env={"EVA_SMOKE": "maybe"})
    assert r.returncode == 2 and one_error_line(r.stderr).startswith("error: EVA_SMOKE='maybe' is neither on")


def test_explicit_flags_win_over_quick_mode_and_the_header_says_which_mode(monkeypatch, capsys, fake_run):
    monkeypatch.setenv("EVA_SMOKE", "1")
    assert cli.main(["train", "--model", "batchnorm", "--epochs", "2", "--no-progress"]) == 0
    assert fake_run[-1]["settings"] == recipes.RunSettings(2, recipes.SMOKE_TRAIN_IMAGES, recipes.SMOKE_TEST_IMAGES,
                                                           quick=True)
    out = capsys.readouterr().out
    assert "(QUICK MODE, EVA_SMOKE: 1,024 training and 500 test images, 2 epoch(s)" in out.splitlines()[0]
    assert cli.main(["train", "--model", "batchnorm", "--train-limit", "512", "--no-progress"]) == 0
    assert fake_run[-1]["settings"] == recipes.RunSettings(1, 512, recipes.SMOKE_TEST_IMAGES, quick=True)
    assert "not judged" in capsys.readouterr().out
    monkeypatch.setenv("EVA_SMOKE", "off")
    assert cli.main(["train", "--model", "batchnorm", "--train-limit", "512", "--no-progress"]) == 0
    assert fake_run[-1]["settings"] == recipes.RunSettings(15, 512, None)
    assert "(limited run: not judged against the target)" in capsys.readouterr().out.splitlines()[0]


# ----------------------------------------------------------------------------- 20. one rule, Ctrl-C, marks


def test_quick_mode_seeds_are_not_judged_and_exit_0_like_train(monkeypatch, capsys, fake_run):
    monkeypatch.setenv("EVA_SMOKE", "1")
    assert cli.main(["seeds", "--model", "batchnorm", "--seeds", "1-2"]) == 0
    out = capsys.readouterr().out
    assert "| not judged |" in out and "NOT met" not in out
    assert out.strip().splitlines()[-1].startswith("Course target not judged: quick mode (EVA_SMOKE)")


def test_ctrl_c_during_seeds_prints_the_finished_seeds_table(tmp_path):
    env = dict(os.environ, EVA_SMOKE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    # SIGINT's default action restored in the child: a shell's background job (nohup make test &) starts
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "eva_utils", "seeds", "--model", "batchnorm", "--seeds", "1-200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("  seed 2:"):
            proc.send_signal(signal.SIGINT)  # Ctrl-C while seed 3 trains
            break
    out, err = proc.communicate(timeout=120)
    out = "".join(lines) + out
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert "Interrupted after 2 of 200 seeds; the finished ones:" in out or "Interrupted after 3 of 200" in out
    assert "| 1 | " in out and "| 2 | " in out and "Traceback" not in err


def test_a_quick_mode_checkpoint_is_marked_and_loading_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVA_SMOKE", "1")
    save, ckpt = tmp_path / "q.pt", tmp_path / "ck"
    assert cli.main(["train", *TINY, "--save", str(save), "--checkpoint-dir", str(ckpt)]) == 0
    capsys.readouterr()
    for path in (save, ckpt / "last.pt", ckpt / "best.pt"):
        assert torch.load(path, weights_only=True)["quick"] is True
        model = models.load(path)
        assert model.quick is True
        assert f"note: {path} is from a quick-mode run (EVA_SMOKE)" in capsys.readouterr().err
    full = tmp_path / "full.pt"
    engine.save_checkpoint(full, models.build("batchnorm"))
    assert not getattr(models.load(full), "quick", False) and capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- 21. plain messages


def test_loading_a_whole_model_pickle_is_one_plain_line(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(models.build("batchnorm"), path)
    with pytest.raises(ValueError) as err:
        models.load(path)
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message and "weights_only" not in message
    assert f"{path} holds a pickled eva_utils.models.BatchNormNet object" in message and "could run code" in message
