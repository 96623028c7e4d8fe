"""Fixtures shared by the service's unit tests."""

from __future__ import annotations

import pytest
from inferops_service.embeddings import SentenceModel, load_model


@pytest.fixture(scope="session")
def model() -> SentenceModel:
    """The real all-MiniLM-L6-v2 model, loaded once for the whole session (seconds)."""
    return load_model(threads=1)
