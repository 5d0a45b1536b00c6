"""Training: LoRA fine-tuning as a resumable job that narrates itself as events."""
