"""inferops: release AI inference services to GPU Kubernetes clusters through Git."""

__version__ = "0.1.0"
