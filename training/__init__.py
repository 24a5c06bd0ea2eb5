"""Training: stage 0 foundations, the VQ-VAE, stage 1 alignment, stage 2 instruction tuning."""
