"""The semantic cache's embedder and local index: precision, scoping, expiry, bounds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from inferops_service.embedding import HashingEmbedder
from inferops_service.semantic import SemanticIndex

THRESHOLD = 0.95  # the configured default
QUESTION = "Explain how to reverse a linked list in Python, step by step, with an example."


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


def similarity(embedder: HashingEmbedder, a: str, b: str) -> float:
    return float(embedder.embed(a) @ embedder.embed(b))


def test_vectors_are_unit_length_and_the_same_in_every_process(
    embedder: HashingEmbedder,
) -> None:
    vector = embedder.embed(QUESTION)
    assert vector.dtype == np.float32 and vector.shape == (256,)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    assert np.array_equal(vector, embedder.embed(QUESTION))
    # Replicas share vectors: another interpreter, with another hash seed, must agree.
    code = (
        "from inferops_service.embedding import HashingEmbedder; import sys; "
        f"sys.stdout.buffer.write(HashingEmbedder().embed({QUESTION!r}).tobytes())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert other.stdout == vector.tobytes()


def test_a_text_without_words_is_the_zero_vector(embedder: HashingEmbedder) -> None:
    assert not embedder.embed("?! ...").any()


@pytest.mark.parametrize(
    "near_duplicate",
    [
        "explain how to reverse a linked list in python step by step with an example",
        "Explain how to reverse a linked list in Python -- step by step, with an example!",
        "explain how to reverse a linked list in python, step by step, with an example please",
    ],
)
def test_near_duplicates_are_above_the_threshold(
    embedder: HashingEmbedder, near_duplicate: str
) -> None:
    assert similarity(embedder, QUESTION, near_duplicate) >= THRESHOLD


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("What is 2+2?", "What is 3+3?"),
        ("Translate 'good morning' into French.", "Translate 'good morning' into Spanish."),
        ("dog bites man", "man bites dog"),
        (QUESTION, "How do I bake sourdough bread at home?"),
        (
            "Write a function that does not modify the input list and returns a sorted copy",
            "Write a function that does modify the input list and returns a sorted copy",
        ),
    ],
)
def test_different_questions_stay_below_the_threshold(
    embedder: HashingEmbedder, a: str, b: str
) -> None:
    assert similarity(embedder, a, b) < THRESHOLD


def test_search_finds_the_nearest_entry_of_its_scope_only(embedder: HashingEmbedder) -> None:
    index = SemanticIndex(embedder.dim, 100)
    index.add("acme/m1", "d-france", embedder.embed("What is the capital of France?"), 100.0)
    index.add("acme/m1", "d-bread", embedder.embed("How do I bake bread?"), 100.0)
    index.add("globex/m1", "d-other", embedder.embed("what is the capital of france"), 100.0)
    query = embedder.embed("what is the capital of France")
    found = index.search("acme/m1", query, now=0.0)
    assert found is not None and found[0] == "d-france" and found[1] > 0.99
    other = index.search("globex/m1", query, now=0.0)
    assert other is not None and other[0] == "d-other"
    assert index.search("acme/m2", query, now=0.0) is None
    assert len(index) == 3


def test_expired_entries_are_not_found_and_are_removed(embedder: HashingEmbedder) -> None:
    index = SemanticIndex(embedder.dim, 100)
    vector = embedder.embed(QUESTION)
    index.add("s", "old", vector, expires_at=10.0)
    assert index.search("s", vector, now=11.0) is None
    assert len(index) == 0
    index.add("s", "a", vector, expires_at=10.0)
    index.add("s", "b", embedder.embed("something else entirely"), expires_at=20.0)
    assert index.expire(now=15.0) == 1
    assert len(index) == 1


def test_re_adding_an_entry_renews_it_instead_of_duplicating(embedder: HashingEmbedder) -> None:
    index = SemanticIndex(embedder.dim, 100)
    vector = embedder.embed(QUESTION)
    index.add("s", "a", vector, expires_at=10.0)
    index.add("s", "a", vector, expires_at=30.0)
    assert len(index) == 1
    assert index.expire(now=20.0) == 0
    assert index.search("s", vector, now=20.0) is not None


def test_the_index_holds_at_most_max_entries_oldest_leaving_first() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = SemanticIndex(16, 100)
    for i, vector in enumerate(vectors):
        index.add("s", f"d{i}", vector, expires_at=1000.0 + i)
    assert len(index) == 100
    oldest = index.search("s", vectors[0], now=0.0)
    assert oldest is None or oldest[0] != "d0"
    found = index.search("s", vectors[299], now=0.0)
    assert found is not None and found[0] == "d299"


def test_a_scope_whose_entries_all_left_is_dropped(embedder: HashingEmbedder) -> None:
    index = SemanticIndex(embedder.dim, 10)
    vector = embedder.embed(QUESTION)
    index.add("s", "a", vector, 100.0)
    index.discard("s", "a")
    assert index.search("s", vector, now=0.0) is None
    index.add("s", "b", vector, 100.0)  # a fresh graph for the scope
    assert index.search("s", vector, now=0.0) == ("b", pytest.approx(1.0, abs=1e-5))


def test_deleted_slots_are_reused(embedder: HashingEmbedder) -> None:
    index = SemanticIndex(embedder.dim, 1000)
    for round_ in range(5):
        for i in range(50):
            index.add("s", f"{round_}-{i}", embedder.embed(f"question {round_} {i}"), 100.0)
        for i in range(1, 50):
            index.discard("s", f"{round_}-{i}")
    # Each round left one entry; deleted slots took the next round's entries.
    assert len(index) == 5
    assert index._scopes["s"].graph.get_current_count() <= 64
