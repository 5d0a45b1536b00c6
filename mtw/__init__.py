"""The `mtw` command: the chat wizard and the engine's commands in one command line."""
