"""Suite-wide fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test: the tests are tiny, CI runs two workers on two cores, and
    multi-threaded CPU reductions may round differently from run to run (the float32/bf16
    agreement tests compare exact values)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
