"""inferops-service: an OpenAI-compatible inference API backed by a simulated GPU model."""

from inferops_service.app import create_app
from inferops_service.config import ServiceSettings, load_settings

__all__ = ["ServiceSettings", "create_app", "load_settings"]
