"""Command-line entry points; `tools/*.py` and the console scripts call these `main`s."""
