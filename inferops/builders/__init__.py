"""Image builders: a service revision in, an image reference with its digest out."""
