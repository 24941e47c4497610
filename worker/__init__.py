"""Transcription: the engine, worker processes and their supervisor, the output files.

It imports db/, never api/, watcher/ or service/.
"""
