"""The GitOps repository: desired state as manifests, changed one commit at a time."""
