"""Glyph's library: model, image vocabulary, templates, generation, chat session.

It imports nothing from training/, data_gen/ or ui/: they build on it, never the other way round.
"""
