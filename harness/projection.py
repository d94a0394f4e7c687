"""A seeded CountSketch (sparse JL with one non-zero per column) of gradients given as a list of parameter blocks.

Parameter j (its index in the flattened subset, blocks in order) goes to bucket h1(j) mod D with sign +-1 from
h2(j): phi(g)[b] = sum_{j: h(j) = b} s(j) g_j, so E<phi(a), phi(b)> = <a, b> and its spread is about
|a||b| / sqrt(D), as for a dense Gaussian projection. The hashes are an integer mix of (seed, j) computed on the
device, so no P x D matrix exists, nothing is stored per parameter unless `cache` says so (then 12 bytes per
parameter), and the sketch is the same on a CPU and a GPU. Cost per projection: O(P).
"""

from __future__ import annotations

from typing import Any, Sequence

NAME = "countsketch-mix32-v1"
_M32 = 0xFFFFFFFF


def _mix32(x: Any) -> Any:
    """A 32-bit integer hash (xor-shift-multiply, constant 0x45d9f3b) on int64 tensors holding values < 2**32."""
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _M32
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _M32
    return x ^ (x >> 16)


class CountSketch:
    def __init__(self, dim: int, seed: int, sizes: Sequence[int], device: Any = "cpu", cache: bool = True) -> None:
        if dim < 1:
            raise ValueError("projection dimension must be at least 1")
        self.dim, self.seed, self.sizes, self.device = dim, seed, list(sizes), device
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self._cache = [self._hash(i) for i in range(len(self.sizes))] if cache else None

    def describe(self) -> dict:
        return {
            "name": NAME,
            "dim": self.dim,
            "seed": self.seed,
            "hash": "bucket = mix32((j + s1) mod 2^32) mod D, sign = mix32((j + s2) mod 2^32) & 1, "
            "j = global index in the parameter subset, s1/s2 from the seed",
            "parameters": sum(self.sizes),
        }

    def _hash(self, block: int) -> tuple[Any, Any]:
        import torch

        j = torch.arange(
            self.offsets[block], self.offsets[block] + self.sizes[block], device=self.device, dtype=torch.int64
        )
        s1 = (self.seed * 2654435761 + 12345) & _M32
        s2 = (self.seed * 2246822519 + 67890) & _M32
        bucket = _mix32((j + s1) & _M32) % self.dim
        sign = 1.0 - 2.0 * (_mix32((j + s2) & _M32) & 1).to(torch.float32)
        return bucket, sign

    def project(self, grads: Sequence[Any]) -> Any:
        """phi(g) for g given as tensors shaped like the subset's parameters (in the same order)."""
        import torch

        out = torch.zeros(self.dim, device=self.device, dtype=grads[0].dtype if grads else torch.float32)
        for i, g in enumerate(grads):
            bucket, sign = self._cache[i] if self._cache is not None else self._hash(i)
            out.index_add_(0, bucket, g.reshape(-1) * sign.to(g.dtype))
        return out
