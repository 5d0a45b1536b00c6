"""Export: Modelfiles and the routes that put a tuned model into Ollama."""
