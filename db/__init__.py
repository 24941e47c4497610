"""The database: tables, migrations, the job store, its queries and search, the worker registry.

It imports nothing of the layers above it (tests/integration/test_import_rules.py).
"""
