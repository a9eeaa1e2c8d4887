"""Test-wide settings.

Tests run torch on one thread: their tensors are tiny, and on a 2-core machine
two intra-op threads spend most of their time waiting for each other (the LLM
trainer tests take about 50 s on one thread and nearly 4 minutes on two).
"""

import torch

torch.set_num_threads(1)
