"""Placeholder: filled in by the merge work."""

__all__: list[str] = []
