"""What a run leaves behind: a live bar only where a terminal shows it, plain lines elsewhere,
and a short line per epoch from the quiet runs (ablations, seeds)."""
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path


from eva_utils import data, engine, models

ROOT = Path(__file__).resolve().parent.parent

# two epochs of 4 batches, with the bar on, as the command line's train does
SCRIPT = """
import torch
from eva_utils import data, engine, models
engine.seed_everything(0)
loaders = data.loaders(64, device="cpu", splits=data.Splits(train_limit=256, test_limit=100))
model = models.build("final")
engine.fit(model, 2, loaders.train, loaders.test, torch.optim.SGD(model.parameters(), lr=0.01), device="cpu")
"""


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    return env


def test_quiet_runs_print_one_short_line_per_epoch(capsys):
    engine.seed_everything(0)
    loaders = data.loaders(64, device="cpu", splits=data.Splits(train_limit=128, test_limit=100))
    model = models.build("final")
    engine.fit(model, 2, loaders.train, loaders.test, progress=False, verbose=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for n, line in enumerate(lines, 1):
        assert re.fullmatch(rf"epoch {n}/2: train \d+\.\d\d%, test \d+\.\d\d% \(\d+\.\d s\)", line), line
    engine.fit(model, 1, loaders.train, loaders.test, progress=False, verbose=None)
    assert capsys.readouterr().out == ""  # None: silent (the benchmark's timed run)


def test_output_to_a_file_gets_lines_not_a_carriage_return_stream(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as out:  # `python -m eva_utils train ... > log 2>&1`
        subprocess.run([sys.executable, "-c", SCRIPT], stdout=out, stderr=subprocess.STDOUT, env=_env(),
                       cwd=tmp_path, check=True, timeout=300)
    text = log.read_text()
    assert "\r" not in text and "it/s" not in text
    bars = re.findall(r"^Loss=\d\.\d{4} Batch_id=3 Accuracy=\d+\.\d\d \(\d+\.\d s\)$", text, re.M)
    assert len(bars) == 2, text  # one line per epoch
    assert text.count("Test set: Average loss:") == 2


def in_a_terminal(argv, folder, stdout_to=None) -> str:
    """Run ``argv`` in ``folder`` with a terminal (120 columns) as its stderr, and as its stdout unless
    ``stdout_to`` names a file; return what the terminal showed (after checking it exited 0)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        if stdout_to is not None:
            os.dup2(os.open(stdout_to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.chdir(folder)
        os.execve(argv[0], argv, _env())
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def test_a_terminal_still_gets_the_live_bar():
    text = in_a_terminal([sys.executable, "-c", SCRIPT], ROOT)
    assert "\r" in text and re.search(r"Batch_id=3 Accuracy=\d+\.\d\d: 100%\|", text), text


def test_the_notebook_bar_is_text_updated_in_place(monkeypatch):
    """In a kernel the bar is one display updated in place; its last state is text."""
    shown = {}

    class Handle:
        def update(self, data, raw=False):
            shown["last"] = data

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: Handle())
    monkeypatch.setattr(engine, "_in_notebook", lambda: True)
    bar = engine.progress_bar(range(5), 5)
    assert isinstance(bar, engine.NotebookTextBar)
    for _ in bar:
        bar.set_description("Loss=0.1000 Batch_id=4 Accuracy=50.00", refresh=False)
    bar.close()
    assert set(shown["last"]) == {"text/plain"}
    assert re.search(r"Batch_id=4 Accuracy=50\.00: 100%\|.*\| 5/5", shown["last"]["text/plain"])


#: The command line as `make train` runs it, on a few images: two epochs of 4 batches, the bar on.
TRAIN = [sys.executable, "-m", "eva_utils", "train", "--recipe", "batchnorm", "--epochs", "2", "--train-limit", "512",
         "--test-limit", "200", "--threads", "1"]
PLAIN_LINE = r"^Loss=\d\.\d{4} Batch_id=3 Accuracy=\d+\.\d\d \(\d+\.\d s\)\r?$"


def test_the_command_line_logs_one_line_per_epoch_into_a_file(tmp_path):
    """`make train > log 2>&1`: the log holds one plain line per epoch, no carriage-return stream."""
    log = tmp_path / "log"
    with open(log, "w") as out:
        subprocess.run(TRAIN, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path, check=True, timeout=300)
    text = log.read_text()
    assert "\r" not in text and "it/s" not in text and "%|" not in text
    assert len(re.findall(PLAIN_LINE, text, re.M)) == 2, text
    assert text.count("Test set: Average loss:") == 2


def test_the_command_line_with_only_stdout_in_a_file_prints_plain_lines_on_the_terminal(tmp_path):
    """`make train > log`: stdout is the file, stderr still the terminal; the progress goes there as one
    line per epoch, not as a live bar whose redraws nobody sees in the log."""
    log = tmp_path / "log"
    terminal = in_a_terminal(TRAIN, tmp_path, stdout_to=log)  # stderr a terminal, stdout the log file
    assert "it/s" not in terminal and "%|" not in terminal, terminal  # no live bar
    assert len(re.findall(PLAIN_LINE, terminal, re.M)) == 2, terminal  # (a terminal ends lines with \r\n)
    text = log.read_text()
    assert "\r" not in text and text.count("Test set: Average loss:") == 2
