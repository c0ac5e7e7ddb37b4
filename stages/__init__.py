"""Thin entry points, one per DVC stage: read params, call pipeline/ or models/, write, log."""
