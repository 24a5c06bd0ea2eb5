"""Glyph's command line: `glyph <command>` (see glyph.cli)."""
