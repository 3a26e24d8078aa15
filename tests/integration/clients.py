"""Old home of the clients that never pause: they live in tests.integration.harness now."""

from __future__ import annotations

from .harness import Load, Outcome

__all__ = ["Load", "Outcome"]
