"""The base models: the catalog a user picks from, their chat templates, GGUF files, and the built-in tiny-random.

Below the dataset, training, evaluation and export packages: each of them asks here what a model is."""
