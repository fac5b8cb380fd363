"""Training: the Trainer, device choice, and one run end to end."""
