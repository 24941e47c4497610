"""whisper-transcriber: watch folders, a durable job queue and faster-whisper workers.

The repository keeps the design card's top-level folders (api/, db/, service/, watcher/, worker/,
alembic/); this package maps them under one import name through relative links, so an installed
wheel puts nothing in site-packages but ``whisper_transcriber``.
"""
