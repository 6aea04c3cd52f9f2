"""Synthetic dumps with known answers, for tests and benchmarks."""

from limitaudit.synth.generate import SynthOptions, SynthResult, generate

__all__ = ["SynthOptions", "SynthResult", "generate"]
