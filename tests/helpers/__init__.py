"""What the tests share: waiting, media files, services and the CLI in subprocesses, databases, a
fake engine. Plain functions and classes; the fixtures that use them live in the conftest files."""
