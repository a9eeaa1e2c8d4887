"""Test-wide settings.

Tests run torch on one thread: their tensors are tiny, and on a 2-core machine
two intra-op threads spend most of their time waiting for each other (the LLM
trainer tests take about 50 s on one thread and nearly 4 minutes on two).

``fake_openai``: a chat-completions server on loopback for API-policy tests.
"""

from collections.abc import Iterator

import pytest
import torch

from fake_openai import FakeOpenAI

torch.set_num_threads(1)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A chat-completions server on loopback for this test (see tests/fake_openai.py)."""
    with FakeOpenAI() as server:
        yield server
