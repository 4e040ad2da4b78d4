"""Placeholder: filled in by the noise work."""

__all__: list[str] = []
