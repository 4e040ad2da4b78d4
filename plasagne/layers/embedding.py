"""Placeholder: filled in by the embedding work."""

__all__: list[str] = []
