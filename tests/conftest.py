"""Test-wide settings.

Tests run torch on one thread: their tensors are tiny, and on a 2-core machine
two intra-op threads spend most of their time waiting for each other (the LLM
trainer tests take about 50 s on one thread and nearly 4 minutes on two).
"""

import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random model and its tokenizer saved as a Hugging Face folder: ``agent.model=<it>``
    runs the real command-line path (load from disk) in seconds."""
    from tiny_model import tiny_model, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
