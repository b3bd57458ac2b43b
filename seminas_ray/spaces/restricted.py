"""A search space restricted to a finite member set (e.g. the architectures a subset table can answer).

Searching on a subset table (the 20,001-cell NB101 slice) with the full space would mostly propose architectures
the table has no number for. ``RestrictedSpace`` wraps the full space so that sampling, mutation and decoding only
ever produce members; the token encoding, keys and constraints stay those of the base space, so a controller
trained on a restricted space is the same model as on the full one.
"""
from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Iterable
from typing import Mapping
from typing import Sequence

import numpy as np

from seminas_ray.spaces.base import Arch
from seminas_ray.spaces.base import SearchSpace


class RestrictedSpace(SearchSpace[Arch]):
    """``base`` restricted to the architectures whose ``base.key`` is in ``keys``.

    Args:
        base: the full space (encoding, keys and validity rules come from it).
        keys: the member keys (order is kept, so sampling is reproducible for a given rng).
        arch_of: key -> architecture, a mapping or a callable (a table's ``arch``), called lazily so that building
            the space for 20k members costs nothing up front.
        max_mutation_tries: how many base mutations ``mutate`` tries before falling back to a random member.
    """

    def __init__(
        self,
        base: SearchSpace[Arch],
        keys: Iterable[str],
        arch_of: Mapping[str, Arch] | Callable[[str], Arch],
        *,
        max_mutation_tries: int = 200,
    ) -> None:
        self.base = base
        self._keys: list[str] = list(dict.fromkeys(keys))  # dedupe, keep order
        if not self._keys:
            raise ValueError("a RestrictedSpace needs at least one member")
        self._members = frozenset(self._keys)
        self._arch_of: Callable[[str], Arch] = arch_of.__getitem__ if isinstance(arch_of, Mapping) else arch_of
        self.max_mutation_tries = int(max_mutation_tries)
        self.name = f"{base.name}[{len(self._keys)} members]"
        self.vocab_size = base.vocab_size
        self.seq_len = base.seq_len

    # -- membership -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, arch_or_key: Any) -> bool:
        """Membership by key (a ``str``) or by architecture."""
        if isinstance(arch_or_key, str) and arch_or_key in self._members:
            return True
        return self.is_valid(arch_or_key)

    def member_keys(self) -> list[str]:
        """The member keys, in construction order."""
        return list(self._keys)

    def member_tokens(self) -> np.ndarray:
        """The encoding of every member (int8 ``[len(self), seq_len]``, construction order), built once."""
        tokens = self.__dict__.get("_tokens")
        if tokens is None:
            tokens = np.ascontiguousarray(self.base.encode_many([self._arch_of(k) for k in self._keys]), dtype=np.int8)
            tokens.setflags(write=False)
            self._tokens = tokens
        return tokens

    def __getstate__(self) -> dict[str, Any]:
        # the space travels to every controller round: it ships its token table (20k members: 0.5 MB, ~0.8 s to
        # encode) so that the table is built once where the space lives, not again in each round's process
        self.member_tokens()
        return dict(self.__dict__)

    def _member_key(self, arch: Any) -> str | None:
        try:
            key = self.base.key(arch)  # validates: an architecture outside the base space raises
        except (ValueError, TypeError):  # InvalidArchitecture is a ValueError
            return None
        return key if key in self._members else None

    # -- sampling -------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> list[Arch]:
        """``n`` members drawn uniformly: distinct when ``n <= len(self)``, with replacement beyond that."""
        n = int(n)
        idx = rng.choice(len(self._keys), size=n, replace=n > len(self._keys))
        return [self._arch_of(self._keys[i]) for i in idx.tolist()]

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A base mutation that lands on a member; after ``max_mutation_tries`` misses, a random other member."""
        own = self.base.key(arch)
        for _ in range(self.max_mutation_tries):
            child = self.base.mutate(arch, rng)
            key = self._member_key(child)
            if key is not None and key != own:
                return child
        if len(self._keys) == 1:
            return self._arch_of(self._keys[0])
        while True:  # fallback: any other member (terminates: there are at least two members)
            key = self._keys[int(rng.integers(len(self._keys)))]
            if key != own:
                return self._arch_of(key)

    # -- encoding -------------------------------------------------------------------------------------------
    def encode(self, arch: Arch) -> np.ndarray:
        return self.base.encode(arch)

    def encode_many(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.base.encode_many(archs)

    def decode(self, tokens: Sequence[int] | np.ndarray) -> Arch | None:
        """The base decoding, or ``None`` when it is not a member."""
        arch = self.base.decode(tokens)
        if arch is None or self._member_key(arch) is None:
            return None
        return arch

    # -- validity and identity --------------------------------------------------------------------------
    def is_valid(self, arch: Any) -> bool:
        """Valid in the base space and a member."""
        return self._member_key(arch) is not None

    def key(self, arch: Arch) -> str:
        return self.base.key(arch)

    def allowed_tokens(self, position: int) -> tuple[int, ...]:
        return self.base.allowed_tokens(position)

    def token_mask(self) -> np.ndarray:
        return self.base.token_mask()

    # -- (de)serialisation and the rest: delegated ----------------------------------------------------------
    def to_config(self, arch: Arch) -> dict[str, Any]:
        return self.base.to_config(arch)

    def from_config(self, config: dict[str, Any]) -> Arch:
        return self.base.from_config(config)

    def cost(self, arch: Arch) -> dict[str, float]:
        return self.base.cost(arch)

    def describe(self, arch: Arch) -> str:
        return self.base.describe(arch)

    def __getattr__(self, name: str) -> Any:
        # Space-specific helpers of the base (e.g. NB201Space.parse) stay reachable. Only called for attributes
        # not found normally; guard "base" itself so a half-built object does not recurse.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)
