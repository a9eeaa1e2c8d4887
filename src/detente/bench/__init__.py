"""``detente bench``: how fast the LLM loop runs here (:mod:`detente.bench.naive`: the baseline)."""
