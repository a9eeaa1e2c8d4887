"""detente: multi-agent reinforcement learning for language-model agents in social dilemmas."""

__version__ = "0.1.0"
