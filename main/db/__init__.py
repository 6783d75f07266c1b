"""Persistence: the engine (engine.py), the tables (entities/), the schema (schema.py), every query (store.py)."""
