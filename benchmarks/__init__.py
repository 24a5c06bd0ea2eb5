"""Speed and memory against the plain Hugging Face way, measured side by side in one run."""
