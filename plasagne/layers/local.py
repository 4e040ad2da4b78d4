"""Placeholder: filled in by the local work."""

__all__: list[str] = []
