"""Placeholder: filled in by the special work."""

__all__: list[str] = []
