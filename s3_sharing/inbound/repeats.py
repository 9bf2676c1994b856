"""Whether a file repeats a key, told from 64-bit fingerprints of its clean rows' keys as they stream
by, so a file without repeats (the usual one) spares the database a hash aggregate of every staged
row: 0.9 s of a million-row import. If no two fingerprints are equal, no key repeats; equal ones
only mean the database must look (a collision costs time, never a wrong answer). Fingerprints, not
the keys: a million keys and Arrow's count of them took 70 MB instead of 16.
"""

import numpy as np
import pyarrow as pa

KEYS_BUDGET = 64 << 20
"""Bytes of fingerprints kept (8 per row): a larger file's repeats are found by the database."""


class KeyFingerprints:
    """A 64-bit fingerprint of each key added, while they fit in ``budget`` bytes (8 per key)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.fingerprints: list[np.ndarray] | None = []

    def add(self, keys: pa.Array) -> None:
        self.budget -= 8 * len(keys)
        if self.budget < 0:
            self.fingerprints = None
        elif self.fingerprints is not None:
            self.fingerprints.append(_fingerprints(keys))

    def repeated(self) -> bool | None:
        """False: no key repeats. True: two may be the same. None: too many keys to tell."""
        if self.fingerprints is None:
            return None
        ordered = np.concatenate([np.empty(0, np.uint64), *self.fingerprints])
        self.fingerprints.clear()
        ordered.sort()
        return bool(np.any(ordered[1:] == ordered[:-1]))


_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1's prime: odd, so every byte position counts


def _fingerprints(keys: pa.Array) -> np.ndarray:
    """A polynomial hash (mod 2**64) of each string, computed over Arrow's buffers; equal strings
    (and all empty or null ones) get equal fingerprints."""
    keys = keys.cast(pa.large_string())  # 64-bit offsets, whatever the batch's
    offsets = np.frombuffer(keys.buffers()[1], np.int64)[keys.offset : keys.offset + len(keys) + 1]
    data = np.frombuffer(keys.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]].astype(np.uint64)
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    position = np.arange(len(data)) - np.repeat(starts, lengths)  # of each byte in its string
    powers = np.cumprod(np.full(max(int(lengths.max(initial=0)), 1), _MULTIPLIER, np.uint64))
    terms = np.append(data * powers[position], np.uint64(0))  # reduceat needs an index past the end
    hashed = np.where(lengths > 0, np.add.reduceat(terms, starts), np.uint64(0))
    return hashed * _MULTIPLIER + lengths.astype(np.uint64)
