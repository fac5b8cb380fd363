"""Training: the UI-free Trainer, fine-tuning a prepared model, device choice, distributed helpers."""
