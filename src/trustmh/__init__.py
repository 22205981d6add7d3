"""trustmh: a harness for TrustMH-Bench, measuring how far an LLM can be trusted in mental-health conversations."""

__version__ = "0.1.0"
