"""The conversation: Chainlit handlers, the LangGraph agent and the Ollama client layer."""
