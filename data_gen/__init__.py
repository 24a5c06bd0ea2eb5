"""The scene world, teacher backends and the instruction-data generator."""
