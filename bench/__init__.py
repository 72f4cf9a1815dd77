"""The course's benchmarks: ``python -m bench [--only PREFIX ...] [--seeds K ...]`` from the repository root."""
