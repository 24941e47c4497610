"""The HTTP API: the FastAPI app, its routes and schemas, and the dashboard.

It imports db/ and worker/'s light modules (formats, names, languages), never the model stack.
"""
