"""The engine of the Model Training Wizard: datasets, training, evaluation, export (no UI imports)."""
