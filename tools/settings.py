"""Where the user's work lives and how to reach Ollama, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime settings; every field can be set through its environment variable."""

    model_config = SettingsConfigDict(env_prefix="MTW_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".mtw")
    """Everything the user makes lives here (MTW_HOME)."""

    ollama_host: str = Field(default="http://127.0.0.1:11434", validation_alias="OLLAMA_HOST")
    """Where Ollama listens (OLLAMA_HOST, exactly as the ollama CLI reads it)."""

    assistant_model: str = "phi4-mini"
    """The Ollama model that is the assistant's own brain (MTW_ASSISTANT_MODEL)."""

    host: str = "127.0.0.1"
    """Address the chat UI binds to (MTW_HOST)."""

    port: int = 8000
    """Port the chat UI listens on (MTW_PORT)."""

    @property
    def db_path(self) -> Path:
        """The one SQLite database of the workspace."""
        return self.home / "mtw.db"

    @property
    def projects_dir(self) -> Path:
        """One folder per project, with its dataset versions and runs."""
        return self.home / "projects"


def normalise_host(host: str) -> str:
    """Turn OLLAMA_HOST forms ('0.0.0.0', 'host:port', 'http://h') into a URL the client can use."""
    host = host.strip() or "127.0.0.1:11434"
    if "://" not in host:
        host = "http://" + host
    scheme, rest = host.split("://", 1)
    if rest.startswith("0.0.0.0"):
        rest = "127.0.0.1" + rest[len("0.0.0.0"):]
    if ":" not in rest.split("/")[0]:
        rest = rest.split("/")[0] + ":11434"
    return f"{scheme}://{rest.rstrip('/')}"


ASSISTANT_CHOICE = "assistant-model.txt"
"""In MTW_HOME: the assistant model picked in the wizard (MTW_ASSISTANT_MODEL, when set, still wins)."""


def assistant_model(settings: Settings | None = None) -> str:
    """The Ollama model that is the assistant's brain: MTW_ASSISTANT_MODEL when set, else the one picked in the
    wizard, else phi4-mini."""
    import os

    settings = settings or get_settings()
    if os.environ.get("MTW_ASSISTANT_MODEL"):
        return settings.assistant_model
    try:
        chosen = (settings.home / ASSISTANT_CHOICE).read_text(encoding="utf-8").strip()
    except OSError:
        chosen = ""
    return chosen or settings.assistant_model


def choose_assistant_model(name: str) -> None:
    """Keep `name` as the assistant's model for every later conversation."""
    from tools.fileio import atomic_write_text

    atomic_write_text(get_settings().home / ASSISTANT_CHOICE, name + "\n")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings for this process (cached; tests clear it with `get_settings.cache_clear()`)."""
    return Settings()
