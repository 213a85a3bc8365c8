"""Durable storage: the DocumentStore implementations, the SQLite file and its migrations."""
