"""Text embeddings for the semantic cache: the :class:`Embedder` protocol and a lexical one.

Contract:

- An :class:`Embedder` turns a text into a float32 vector of ``dim`` numbers with unit L2
  norm (or all zeros for a text without words), so a dot product is a cosine similarity.
  It is deterministic: every replica, in every process, gives a text the same vector,
  since replicas share the vectors they store.
- Its ``name`` names its vector space. Vectors of two embedders are not comparable (other
  features, other dimensions), so the cache keeps and shares entries per name and never
  compares a vector with one of another name. Its ``threshold`` is the least similarity it
  counts as a hit unless ``cache.semantic.threshold`` is set: thresholds are per embedder.
- The cache awaits :meth:`Embedder.embed_query`, which returns None for a text the embedder
  cannot take (the request then skips the semantic cache). An embedder that runs a model
  does so off the event loop (:class:`inferops_service.embeddings.QueryEmbedder`).
- :class:`HashingEmbedder` (``hashing``, threshold 0.95) needs no model. It hashes
  (CRC-32, stable across processes, unlike ``hash``) the text's words, word pairs, word
  triples and the character trigrams of each word into ``dim`` signed buckets; each of
  those four groups weighs as one, the trigrams half. Case, punctuation and spacing do not
  count. It finds near-duplicates (the same question with other casing, punctuation, a
  filler word or a typo) and keeps prompts that differ in a word that matters
  (France/Germany, 2+2/3+3) below a high threshold; it does not know synonyms or meaning,
  and a one-word change to a long prompt (a negation too) moves it little. It costs
  microseconds, so it runs on the event loop: :meth:`HashingEmbedder.embed_query` never
  suspends.

Pure functions of the text; numpy only (it comes with the semantic extra).
"""

from __future__ import annotations

import itertools
import re
import zlib
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

HASHING = "hashing"
HASHING_DIM = 256
# Set for precision: prompts that differ in one word that matters stay below it.
HASHING_THRESHOLD = 0.95

_WORD = re.compile(r"\w+")
_SIGN_BIT = 0x80000000


class Embedder(Protocol):
    """Maps a text to a unit vector of ``dim`` float32 numbers, the same one every time."""

    @property
    def name(self) -> str:
        """The vector space; vectors of embedders with another name are never compared."""
        ...

    @property
    def dim(self) -> int:
        """The length of every vector."""
        ...

    @property
    def threshold(self) -> float:
        """The least cosine similarity counted as a hit, unless configured."""
        ...

    async def embed_query(self, text: str) -> Vector | None:
        """Return the text's unit vector, or None when the embedder cannot take the text."""
        ...


class HashingEmbedder:
    """Signed feature hashing of words, word n-grams and character trigrams, L2-normalised."""

    def __init__(self, dim: int = HASHING_DIM) -> None:
        if dim < 8:
            raise ValueError(f"dim must be at least 8, got {dim}")
        self._dim = dim
        self._name = HASHING if dim == HASHING_DIM else f"{HASHING}-{dim}"

    @property
    def name(self) -> str:
        """``hashing`` (``hashing-{dim}`` at another dimension)."""
        return self._name

    @property
    def dim(self) -> int:
        """The length of every vector."""
        return self._dim

    @property
    def threshold(self) -> float:
        """The least cosine similarity counted as a hit, unless configured."""
        return HASHING_THRESHOLD

    async def embed_query(self, text: str) -> Vector:
        """Return :meth:`embed`'s vector, on the event loop: it costs microseconds."""
        return self.embed(text)

    def embed(self, text: str) -> Vector:
        """Return the text's unit vector (all zeros when it has no words)."""
        words = _WORD.findall(text.casefold())
        hashes: list[int] = []
        weights: list[float] = []
        _group(hashes, weights, words, 1.0)
        _group(hashes, weights, [f"{a} {b}" for a, b in itertools.pairwise(words)], 1.0)
        triples = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
        _group(hashes, weights, triples, 1.0)
        # Trigrams of each word, marked at its ends, so a typo changes few features.
        grams = [m[i : i + 3] for w in words for m in (f"<{w}>",) for i in range(len(m) - 2)]
        _group(hashes, weights, grams, 0.5)
        if not hashes:
            return np.zeros(self._dim, dtype=np.float32)
        codes = np.array(hashes, dtype=np.uint32)
        # Signed buckets: collisions cancel out on average instead of adding up.
        signed = np.where(codes & _SIGN_BIT, 1.0, -1.0) * np.array(weights)
        vector = np.bincount(codes % self._dim, weights=signed, minlength=self._dim)
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            return np.zeros(self._dim, dtype=np.float32)
        return (vector / norm).astype(np.float32)


def _group(hashes: list[int], weights: list[float], features: list[str], weight: float) -> None:
    """Add one group of features, scaled so the group's own norm is ``weight``."""
    if not features:
        return
    each = weight / len(features) ** 0.5
    for feature in features:
        hashes.append(zlib.crc32(feature.encode("utf-8", "surrogatepass")))
        weights.append(each)
