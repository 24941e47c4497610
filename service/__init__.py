"""The entry points: settings (in one place), the CLI, start-up checks, the `serve` runner.

The top layer: it may import every other; none imports it.
"""
