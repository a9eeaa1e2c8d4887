"""Test-wide settings and fixtures.

Tests run torch on one thread: their tensors are tiny, and on a 2-core machine
two intra-op threads spend most of their time waiting for each other (the LLM
trainer tests take about 50 s on one thread and nearly 4 minutes on two).

``fake_openai``: a chat-completions server on loopback for API-policy tests.
``tiny_model_dir``: a tiny random model saved as a Hugging Face folder.
``ray_runtime``: a local Ray runtime with 2 CPUs, started once for the session by the first test that
asks for it (such tests skip where Ray is not installed).
"""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from fake_openai import FakeOpenAI

torch.set_num_threads(1)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A chat-completions server on loopback for this test (see tests/fake_openai.py)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random model and its tokenizer saved as a Hugging Face folder: ``agent.model=<it>``
    runs the real command-line path (load from disk) in seconds."""
    from tiny_model import tiny_model, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[Any]:
    """The ``ray`` module, connected to a local runtime of 2 CPUs (2 rollout workers of one CPU each), its
    workers not niced, as :func:`detente.rollout.ray_pool.connect` starts one."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, log_to_driver=False, logging_level=logging.WARNING,
                 _system_config={"worker_niceness": 0})
    yield ray
    ray.shutdown()
