"""User mistakes and file-system failures: one line `error: ...` naming the path and the remedy.

Never a traceback, and never after an hour of training. The tests run as root on the
build machine, where chmod does not stop a write: an unwritable folder is made by
putting it under a regular *file*, or by making the temporary-file call fail.
"""
import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import torch

from eva_utils import cli, data, engine, fsutil, histories, models, recipes, sources

TINY = ["--epochs", "3", "--train-limit", "256", "--test-limit", "200", "--no-progress"]  # 3: the final recipe's
# shortest run (one epoch of OneCycle + its 2-epoch hold)


def one_error_line(stderr: str) -> str:
    """The whole of stderr must be one line starting with `error: `; returns it."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def run_cli(*args, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "eva_utils", *args], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: the error must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad path was refused")
    monkeypatch.setattr(recipes, "run", refuse)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def a_file(tmp_path):
    """A regular file: nothing can be created under it, even by root."""
    path = tmp_path / "file.txt"
    path.write_text("not a folder\n")
    return path


def read_only(monkeypatch, folder: Path):
    """Make creating files in ``folder`` (or below it) fail as on a read-only folder."""
    real = tempfile.mkstemp
    folder = Path(folder).resolve()

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and (Path(dir).resolve() == folder or folder in Path(dir).resolve().parents):
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / "x.tmp"))
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# ----------------------------------------------------------------------------- 1. --save / --checkpoint-dir


def test_save_pointing_at_a_folder_fails_before_the_first_epoch(tmp_path):
    """A real run: the error comes at once, not after every epoch has run."""
    r = run_cli("train", *TINY, "--save", str(tmp_path))
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert str(tmp_path) in line and "is a folder" in line and "final.pt" in line
    assert "EPOCH" not in r.stdout


@pytest.mark.parametrize("option, where, expected", [
    ("--save", "folder", "is a folder: give a file name"),
    ("--save", "under_file", "is a file, not a folder; choose another path"),
    ("--checkpoint-dir", "file", "is a file, not a folder"),
    ("--checkpoint-dir", "under_file", "is a file, not a folder; choose another path"),
])
def test_bad_save_paths_are_refused_before_training(tmp_path, a_file, capsys, no_training, option, where,
                                                     expected):
    path = {"folder": tmp_path, "file": a_file, "under_file": a_file / "sub" / "final.pt"}[where]
    assert cli.main(["train", *TINY, option, str(path)]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert option in line and str(path) in line and expected in line
    assert "EPOCH" not in out


@pytest.mark.parametrize("option", ["--save", "--checkpoint-dir"])
def test_read_only_save_folder_is_refused_before_training(tmp_path, monkeypatch, capsys, no_training, option):
    folder = tmp_path / "runs"
    folder.mkdir()
    read_only(monkeypatch, folder)
    target = folder / "final.pt" if option == "--save" else folder
    assert cli.main(["train", *TINY, option, str(target)]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert str(folder) in line and "not writable" in line and "make" in line and "writable" in line
    assert "EPOCH" not in out


def test_good_save_paths_are_not_created_by_the_check(tmp_path):
    target = tmp_path / "new" / "deeper" / "final.pt"
    assert fsutil.check_writable_file(target, "--save") == target
    assert fsutil.check_writable_dir(tmp_path / "ckpt", "--checkpoint-dir") == tmp_path / "ckpt"
    assert not (tmp_path / "new").exists() and not (tmp_path / "ckpt").exists()
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


# ----------------------------------------------------------------------------- 2. file-system errors


def test_read_only_checkpoint_folder_names_the_path_not_inline_container(tmp_path, monkeypatch):
    model = models.build("final")
    read_only(monkeypatch, tmp_path)
    with pytest.raises(OSError) as err:
        engine.save_checkpoint(tmp_path / "final.pt", model)
    message = str(err.value)
    assert str(tmp_path / "final.pt") in message and "Permission denied" in message
    assert "writable" in message and "inline_container" not in message
    assert list(tmp_path.iterdir()) == []


def test_torch_write_failure_names_the_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError) as err:
        engine.save_checkpoint(tmp_path / "final.pt", models.build("final"))
    assert str(tmp_path / "final.pt") in str(err.value) and "choose another path" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_history_writer_reports_a_folder_in_the_way(tmp_path):
    (tmp_path / "history.json").mkdir()
    with pytest.raises(OSError, match="is a folder"):
        histories.write_history(histories.History(), tmp_path / "history.json")


@pytest.mark.parametrize("how", ["--data", "EVA_DATA"])
def test_unwritable_data_folder_gives_one_line(tmp_path, monkeypatch, capsys, no_network, how):
    folder = tmp_path / "data"
    folder.mkdir()
    read_only(monkeypatch, folder)
    if how == "EVA_DATA":
        monkeypatch.setenv("EVA_DATA", str(folder))
        argv = ["train", *TINY]
    else:
        argv = ["train", *TINY, "--data", str(folder)]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert str(folder) in line and "Permission denied" in line and "$EVA_DATA" in line and "writable" in line
    assert "EPOCH" not in out


def test_data_folder_that_cannot_be_created_gives_one_line(a_file):
    folder = a_file / "data"
    r = run_cli("train", *TINY, env={"EVA_DATA": str(folder)})
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert str(folder) in line and f"{a_file} is a file" in line and "$EVA_DATA" in line


def test_eva_data_pointing_at_a_file_gives_one_line(a_file):
    r = run_cli("train", *TINY, env={"EVA_DATA": str(a_file)})
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert str(a_file) in line and "is a file, not a folder" in line and "$EVA_DATA" in line
    assert "EPOCH" not in r.stdout


def test_raw_file_replaced_by_a_folder_is_named_with_the_remedy(tmp_path, mnist_root, capsys):
    shutil.copytree(mnist_root / "MNIST", tmp_path / "MNIST")
    bad = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    bad.unlink()
    bad.mkdir()
    with pytest.raises(ValueError) as err:
        sources.ensure_mnist(tmp_path)
    assert str(bad) in str(err.value) and "remove it" in str(err.value)
    assert cli.main(["train", *TINY, "--data", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "rm -r" in line


def test_raw_os_errors_get_the_path_and_a_remedy():
    err = PermissionError(errno.EACCES, "Permission denied", "/somewhere/file.pt")
    text = fsutil.describe(err)
    assert text.startswith("/somewhere/file.pt: Permission denied; make") and "\n" not in text


# ----------------------------------------------------------------------------- full disk; Fashion-MNIST's folder faults


def test_a_full_disk_is_named_with_its_own_remedy():
    full = OSError(errno.ENOSPC, "No space left on device")
    assert fsutil.remedy(full, Path("/data")) == ("free some space on the disk holding /data, or choose a "
                                                  "folder on another disk")
    error = sources.unwritable_data_error(Path("/data/MNIST/raw"), full)
    assert str(error).startswith("no space left on /data/MNIST/raw:") and "$EVA_DATA" in str(error)
    assert "writable" not in str(error)


def test_a_full_disk_during_the_data_build_says_no_space_left(tmp_path, monkeypatch, capsys, no_network):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)  # every write of the build fails as on a full disk
    assert cli.main(["train", *TINY, "--data", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    raw = tmp_path / "MNIST" / "raw"
    assert line.startswith(f"error: no space left on {raw}:") and "$EVA_DATA" in line and "free some space" in line
    assert "writable" not in line and "EPOCH" not in out
    assert not list(raw.iterdir())  # no temporary file left


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs): writes beyond it fail with ENOSPC. Needs root (mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk case is tested with ENOSPC raised")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_names_itself_for_data_and_torch_saves(tiny_disk, monkeypatch, capsys, no_network):
    assert cli.main(["train", *TINY, "--data", str(tiny_disk)]) == 2
    raw = tiny_disk / "MNIST" / "raw"
    assert one_error_line(capsys.readouterr().err).startswith(f"error: no space left on {raw}:")
    assert not list(raw.glob("*.tmp"))
    with pytest.raises(fsutil.WriteError) as err:  # torch's own writer: the cause, not inline_container.cc
        fsutil.atomic_torch_save({"x": torch.zeros(1_000_000)}, tiny_disk / "cache.pt")
    message = str(err.value)
    assert message.startswith(f"no space left on {tiny_disk}: cannot write {tiny_disk / 'cache.pt'}; free some "
                              "space") and "inline_container" not in message
    assert err.value.errno == errno.ENOSPC and not list(tiny_disk.glob("cache.pt*"))


@pytest.fixture
def fashion_downloads(monkeypatch):
    """torchvision's Fashion-MNIST download, replaced by one that fails as offline (with torchvision's long
    message) and counts its calls; no offline copy."""
    calls = []

    def offline(root):
        calls.append(root)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried " + "http://mirror/, got:\n" * 30
                           + "<urlopen error [Errno -2] Name or service not known>")
    monkeypatch.setattr(sources, "_fashion_download", offline)
    monkeypatch.setattr(sources, "fashion_offline_dir", lambda: None)
    return calls


def test_fashion_with_eva_data_a_file_names_the_file_first(a_file, monkeypatch, fashion_downloads):
    monkeypatch.setenv("EVA_DATA", str(a_file))
    with pytest.raises(ValueError, match=rf"^the data folder {a_file} is a file, not a folder; point --data / \$EVA_DATA"):
        sources.ensure_fashion_mnist()
    assert fashion_downloads == []
    r = run_cli("train", "--model", "fashion_adapted", *TINY, env={"EVA_DATA": str(a_file)})
    assert r.returncode == 2 and one_error_line(r.stderr).startswith(f"error: the data folder {a_file} is a file")


def test_fashion_raw_file_replaced_by_a_folder_is_named_with_the_remedy(tmp_path, fashion_downloads):
    bad = sources.fashion_raw_dir(tmp_path) / "t10k-labels-idx1-ubyte"
    bad.mkdir(parents=True)
    with pytest.raises(ValueError, match=rf"^{bad} is a folder where the data file .* \(rm -r {bad}\)"):
        sources.ensure_fashion_mnist(tmp_path)
    assert fashion_downloads == []


def test_fashion_read_only_folder_is_named_not_a_failed_download(tmp_path, monkeypatch, capsys, fashion_downloads):
    read_only(monkeypatch, tmp_path)
    raw = sources.fashion_raw_dir(tmp_path)
    with pytest.raises(sources.DataUnavailableError) as err:
        sources.ensure_fashion_mnist(tmp_path)
    assert str(err.value).startswith(f"cannot write the data into {raw} (Permission denied). Remedies: make {raw} "
                                     "writable")
    assert fashion_downloads == []
    assert cli.main(["train", "--model", "fashion_adapted", *TINY, "--data", str(tmp_path)]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: cannot write the data into {raw}")


def test_fashion_download_failure_is_said_in_short_with_its_cause(tmp_path, fashion_downloads):
    with pytest.raises(sources.DataUnavailableError) as err:
        sources.ensure_fashion_mnist(tmp_path)
    message = str(err.value)
    said = message.split("torchvision download failed: ")[1].split("; no offline copy")[0]
    assert len(said) <= 240 and said.endswith("Name or service not known>") and "\n" not in message


# ----------------------------------------------------------------------------- 3. unique temporary files


def test_concurrent_writers_of_one_file_all_succeed_and_leave_a_whole_file(tmp_path):
    target = tmp_path / "train-images-idx3-ubyte"
    payloads = [bytes([i]) * (1 << 20) + os.urandom(64) for i in range(6)]
    errors = []
    barrier = threading.Barrier(len(payloads))

    def writer(payload):
        try:
            barrier.wait()
            for _ in range(5):
                fsutil.atomic_write_bytes(target, payload)
        except Exception as err:  # noqa: BLE001 - collected and asserted on below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_two_processes_building_one_idx_file_both_succeed(tmp_path):
    """Two processes run sources._write_idx on one target at once (as two notebooks building MNIST)."""
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from eva_utils import sources\n"
        "x = np.full((3000, 28, 28), int(sys.argv[2]), np.uint8)\n"
        "for _ in range(10):\n"
        "    sources._write_idx(Path(sys.argv[1]), x)\n"
    )
    target = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(v)], env=env,
                              stderr=subprocess.PIPE, text=True) for v in (7, 9)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    raw = target.read_bytes()
    assert len(raw) == 16 + 3000 * 28 * 28 and raw[16:] in (bytes([7]) * 3000 * 784, bytes([9]) * 3000 * 784)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_failing_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with fsutil.atomic_open(target) as fh:
            fh.write(b"half of the new")
            1 / 0
    assert target.read_text() == "old"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_temporary_files_are_unique_and_in_the_target_folder(tmp_path, monkeypatch):
    seen = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        seen.append(Path(name))
        return fd, name
    monkeypatch.setattr(tempfile, "mkstemp", spy)
    engine.save_checkpoint(tmp_path / "last.pt", models.build("final"))
    engine.save_checkpoint(tmp_path / "last.pt", models.build("final"))
    histories.write_history(histories.History(), tmp_path / "h.json")
    sources._write_idx(tmp_path / "labels", torch.zeros(3, dtype=torch.uint8).numpy())
    assert len(seen) == 4 and len(set(seen)) == 4
    assert all(p.parent == tmp_path and p.name.endswith(".tmp") for p in seen)
    assert seen[0].name.startswith("last.pt.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json", "labels", "last.pt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    path = fsutil.atomic_write_text(tmp_path / "a.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~fsutil._UMASK


# ----------------------------------------------------------------------------- 4. limits


@pytest.mark.parametrize("kwargs, named", [
    ({"train_limit": -5}, "train_limit"),
    ({"test_limit": 0}, "test_limit"),
    ({"train_limit": 2.5}, "train_limit"),
    ({"valid_size": -1}, "valid_size"),
])
def test_negative_or_zero_limits_are_refused(kwargs, named, monkeypatch):
    def no_data(*args, **kw):
        raise AssertionError("the data was loaded before the limits were checked")
    monkeypatch.setattr(sources, "load", no_data)
    monkeypatch.setattr(sources, "ensure_mnist", no_data)
    value = next(iter(kwargs.values()))
    with pytest.raises(ValueError, match=rf"{named} must be .* got {value}"):
        data.loaders(64, device="cpu", splits=data.Splits(**kwargs))


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
@pytest.mark.parametrize("kwargs, named", [
    ({"train_limit": -5}, "train_limit"),
    ({"test_limit": -3}, "test_limit"),
    ({"valid_size": -10}, "valid_size"),  # CIFAR's old `validation=` hold-out is valid_size now
])
def test_fashion_and_cifar_limits_are_refused_before_loading(dataset, kwargs, named, monkeypatch):
    def no_data(*args, **kw):
        raise AssertionError("the data was loaded before the limits were checked")
    monkeypatch.setattr(sources, "load", no_data)
    value = next(iter(kwargs.values()))
    with pytest.raises(ValueError, match=rf"{named} .* got {value}"):
        data.loaders(64, dataset=dataset, device="cpu", splits=data.Splits(**kwargs))


def test_unknown_dataset_is_refused_with_the_known_ones(monkeypatch):
    monkeypatch.setattr(sources, "load", lambda *a, **k: pytest.fail("loaded an unknown dataset"))
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'; choose one of: mnist, fashion_mnist, cifar10"):
        data.loaders(64, dataset="cifar100", device="cpu")


def test_a_positive_limit_still_works(mnist_root):
    loaders = data.loaders(64, device="cpu", splits=data.Splits(train_limit=100, test_limit=50))
    assert len(loaders.train.images) == 100 and len(loaders.test.images) == 50


def test_negative_valid_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--valid", "-5"])
    assert exit_.value.code == 2 and "--valid: must be 0 or more, got -5" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 5. Ctrl-C


def interrupt_on_call(monkeypatch, n: int):
    """Ctrl-C in the n-th epoch of :func:`engine.fit` (whose loop runs each epoch in ``_train_epoch``)."""
    real = engine._train_epoch
    calls = []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(engine, "_train_epoch", train)


def test_ctrl_c_in_the_second_epoch_names_the_last_checkpoint(tmp_path, monkeypatch, capsys, mnist_root):
    interrupt_on_call(monkeypatch, 2)
    ckpt = tmp_path / "ckpt"
    assert cli.main(["train", "--epochs", "3", "--train-limit", "256", "--test-limit", "200", "--no-progress",
                     "--batch-size", "16", "--checkpoint-dir", str(ckpt)]) == 130
    out, err = capsys.readouterr()
    assert "EPOCH: 2" in out and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"interrupted after epoch 1; last checkpoint at {ckpt / 'last.pt'}"
    assert models.load(ckpt / "last.pt").registry_name == "final"


def test_ctrl_c_without_checkpoint_dir_says_how_to_keep_one(monkeypatch, capsys, mnist_root):
    interrupt_on_call(monkeypatch, 2)
    assert cli.main(["train", "--epochs", "3", "--train-limit", "256", "--test-limit", "200",
                     "--batch-size", "16", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == ("interrupted; no checkpoint was written "
                                            "(use --checkpoint-dir DIR to keep one after every epoch)")


def test_ctrl_c_in_the_first_epoch_does_not_claim_an_old_checkpoint(tmp_path, monkeypatch, capsys, mnist_root):
    ckpt = tmp_path / "ckpt"
    engine.save_checkpoint(ckpt / "last.pt", models.build("final"), epoch=15)  # an earlier run's
    interrupt_on_call(monkeypatch, 1)
    assert cli.main(["train", *TINY, "--batch-size", "16", "--checkpoint-dir", str(ckpt)]) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("interrupted before the first epoch ended; no checkpoint was written")


# ----------------------------------------------------------------------------- 6. mismatched checkpoints


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "final.pt"
    engine.save_checkpoint(path, models.build("final"))
    return path


def test_checkpoint_with_edited_weights_names_path_and_model(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"].pop(next(iter(state["state_dict"])))
    key = next(k for k, v in state["state_dict"].items() if v.ndim == 4)
    state["state_dict"][key] = torch.zeros(1, 1, 1, 1)
    torch.save(state, checkpoint)
    with pytest.raises(ValueError) as err:
        models.load(checkpoint)
    message = str(err.value)
    assert str(checkpoint) in message and "'final'" in message and "Missing key" in message
    assert "size mismatch" in message and "python -m eva_utils train --recipe final --save" in message
    assert "\n" not in message


def test_checkpoint_with_edited_model_kwargs_names_path_and_model(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    state["model_kwargs"] = {"widths": 3}
    torch.save(state, checkpoint)
    with pytest.raises(ValueError) as err:
        models.load(checkpoint)
    message = str(err.value)
    assert str(checkpoint) in message and "'final'" in message and "widths" in message
    assert "re-create it with" in message


def test_checkpoint_of_another_model_names_both(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    state["model_name"] = "lighter"
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match=r"do not fit model 'lighter'") as err:
        models.load(checkpoint)
    assert str(checkpoint) in str(err.value)


# ----------------------------------------------------------------------------- 7. empty data folder


def test_empty_data_argument_is_refused():
    with pytest.raises(ValueError, match="data folder is empty"):
        sources.data_dir("")
    with pytest.raises(ValueError, match="data folder is empty"):
        sources.ensure_mnist("")


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_eva_data_means_the_default(monkeypatch, value):
    monkeypatch.setenv("EVA_DATA", value)
    assert sources.data_dir() == sources.DEFAULT_DATA_DIR


@pytest.mark.parametrize("command", ["train", "seeds", "bench"])
def test_empty_data_option_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--data", ""])
    assert exit_.value.code == 2
    assert "argument --data: empty folder name" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--save", "--checkpoint-dir"])
def test_empty_save_option_is_a_usage_error(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", option, ""])
    assert exit_.value.code == 2 and f"argument {option}: empty path" in capsys.readouterr().err
