"""Seeded randomness for the generator, in bulk as Polars columns.

Every stream is a stdlib Mersenne Twister seeded from (seed, stream name): the
output then depends only on the options, never on Polars' hash (which is only
stable within one Polars version) or on how many values another stream drew.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

import polars as pl
import pyarrow as pa

T = TypeVar("T")

_TWO32 = 4294967296.0


class Rng:
    def __init__(self, seed: int, stream: str) -> None:
        self.seed = seed
        self.stream = stream
        # A str seed goes through SHA-512 inside random.seed: stable across runs,
        # unlike hash(), which PYTHONHASHSEED randomises.
        self.py = random.Random(f"limitaudit.synth:{seed}:{stream}")

    def sub(self, name: str) -> Rng:
        return Rng(self.seed, f"{self.stream}/{name}")

    # ---- bulk (Polars) -------------------------------------------------------

    def u32(self, n: int) -> pl.Series:
        buf = pa.py_buffer(self.py.randbytes(4 * n))
        arr = pa.Array.from_buffers(pa.uint32(), n, [None, buf])
        s = pl.from_arrow(arr)
        assert isinstance(s, pl.Series)
        return s

    def u16(self, n: int) -> pl.Series:
        buf = pa.py_buffer(self.py.randbytes(2 * n))
        arr = pa.Array.from_buffers(pa.uint16(), n, [None, buf])
        s = pl.from_arrow(arr)
        assert isinstance(s, pl.Series)
        return s

    def uniform(self, n: int) -> pl.Series:
        """Floats in the open interval (0, 1), 32 bits of resolution."""
        return (self.u32(n).cast(pl.Float64) + 0.5) / _TWO32

    def coarse(self, n: int) -> pl.Series:
        """Floats in (0, 1) with 16 bits of resolution (1.5e-5).

        Enough for coin flips and small integer draws, at half the bytes: the
        Mersenne Twister's byte output is the generator's main cost at scale.
        """
        return (self.u16(n).cast(pl.Float64) + 0.5) / 65536.0

    def ints(self, n: int, lo: int, hi: int) -> pl.Series:
        """Integers in [lo, hi], both ends included."""
        span = hi - lo + 1
        u = self.coarse(n) if span <= 4096 else self.uniform(n)
        return ((u * span).floor().cast(pl.Int64) + lo).clip(lo, hi)

    def normal(self, n: int, mu: float, sd: float) -> pl.Series:
        u1 = self.coarse(n)
        u2 = self.coarse(n)
        z = (-2.0 * u1.log()).sqrt() * (2.0 * math.pi * u2).cos()
        return z * sd + mu

    def exponential(self, n: int, mean: float) -> pl.Series:
        return -self.uniform(n).log() * mean

    def hex(self, n: int, nbytes: int) -> pl.Series:
        buf = pa.py_buffer(self.py.randbytes(nbytes * n))
        arr = pa.Array.from_buffers(pa.binary(nbytes), n, [None, buf])
        s = pl.from_arrow(arr)
        assert isinstance(s, pl.Series)
        return s.cast(pl.Binary).bin.encode("hex")

    # ---- scalar --------------------------------------------------------------

    def random(self) -> float:
        return self.py.random()

    def randint(self, lo: int, hi: int) -> int:
        return self.py.randint(lo, hi)

    def uniform1(self, lo: float, hi: float) -> float:
        return self.py.uniform(lo, hi)

    def choice(self, items: Sequence[T]) -> T:
        return items[self.py.randrange(len(items))]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        return self.py.sample(list(items), min(k, len(items)))

    def shuffled(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        self.py.shuffle(out)
        return out
