"""Offline, CPU-only test setup: no test may reach the network."""

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="r2kd_hf_test_home_")
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_EVALUATE_OFFLINE="1",
    HF_HOME=_HF_HOME,
    TRANSFORMERS_VERBOSITY="error",
    TOKENIZERS_PARALLELISM="false",
)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
