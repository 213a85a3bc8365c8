"""The REST API (under /api/v1) and the web app it serves."""
