"""Textual front end (built later on the engine)."""
