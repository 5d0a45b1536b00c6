"""What a user can name in the chat: the training settings they may change, the presets and the steps to go to.

One definition each. The chat's parser (assistant/routing.py), the assistant model's structured-output schema and
its prompt, the settings panel and the setting changes (tools/train/setting.py) are made from these tables, so
they cannot disagree. The names are the words on disk and on the command line (`--set epochs=1`, `--preset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SettingName = Literal["epochs", "learning_rate", "batch_size", "max_steps", "context", "lora_r", "preset",
                      "base_model"]
"""What a user may change by saying it: TrainConfig fields, the preset and the base model."""
PresetName = Literal["documents", "communications", "balanced"]
"""The guide's presets (their values are tools/train/config.PRESETS)."""
Target = Literal["interview", "dataset", "plan", "evaluate", "deploy", "models", "start_over"]
"""The steps a message may ask to go to."""

SETTING_NAMES: tuple[SettingName, ...] = get_args(SettingName)
PRESET_NAMES: tuple[PresetName, ...] = get_args(PresetName)
TARGETS: tuple[Target, ...] = get_args(Target)
DEFAULT_PRESET: PresetName = "balanced"

PRESET_USES: dict[PresetName, str] = {"documents": "PRDs, specs", "communications": "emails, updates",
                                      "balanced": "mixed"}
"""What each preset is for, in the guide's words."""

NUMBER = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"
TO = r"\s*(?:to|=|:|of)?\s*"


@dataclass(frozen=True)
class Setting:
    """One setting a user may change in words or in the panel."""

    label: str
    """Its name in sentences ("learning rate 2e-4 → 1e-4") and in "You can change: …"."""
    said: tuple[str, ...] = ()
    """How a message names it with its value, as regexes tried in order: {N} is a number, {TO} "to", "=", ":" or
    "of" between spaces, {P} a preset's name. The base model is found by name instead (assistant/routing.py)."""
    choices: tuple[str, ...] = ()
    """The values it takes when they are a closed set (spelled out in the assistant model's prompt)."""


SETTINGS: dict[SettingName, Setting] = {
    "epochs": Setting("epochs", (r"\b{N}\s*epochs?\b", r"\bepochs?{TO}{N}\b")),
    "learning_rate": Setting("learning rate", (r"\b(?:learning[ _]rate|lr){TO}{N}",)),
    "batch_size": Setting("batch size", (r"\bbatch(?:[ _]size)?{TO}{N}\b",)),
    "max_steps": Setting("max steps", (r"\b(?:max(?:imum)?[ _])?steps?{TO}{N}\b", r"\b{N}\s*steps\b")),
    "context": Setting("context", (r"\bcontext(?:[ _](?:length|window|size))?{TO}{N}\b",)),
    "lora_r": Setting("LoRA rank", (r"\b(?:lora[ _])?(?:rank|lora[ _]r){TO}{N}\b",)),
    "preset": Setting("preset", (r"\b({P})\s+preset\b", r"\bpreset\s*(?:to|=|:)?\s*({P})\b"), PRESET_NAMES),
    "base_model": Setting("base model"),
}
"""Every setting, in the order the parser tries them and the prompt lists them."""


def setting_patterns() -> list[tuple[str, SettingName]]:
    """The parser's regexes (group 1 is the value), each with the setting it names, in the order they are tried."""
    return [(form.replace("{N}", NUMBER).replace("{TO}", TO).replace("{P}", "|".join(PRESET_NAMES)), name)
            for name, s in SETTINGS.items() for form in s.said]


def settings_in_words() -> str:
    """The settings as the assistant model's prompt lists them: "epochs, …, preset documents|…|balanced, …"."""
    return ", ".join(f"{name} {'|'.join(s.choices)}" if s.choices else name for name, s in SETTINGS.items())


@dataclass(frozen=True)
class PanelField:
    """One field of the chat's settings panel."""

    id: str
    """The setting it changes; `base_path` gives the base model by its path or its Ollama name."""
    label: str
    kind: Literal["select", "number", "text"]
    description: str
    """One sentence a person reads under the field."""
    values: tuple[str, ...] = ()
    """A select's fixed values (the preset's and the base model's come from the config and the catalog)."""


PANEL: tuple[PanelField, ...] = (
    PanelField("preset", "Preset", "select", "Starting values from the guide: "
               + ", ".join(f"{name} ({use})" for name, use in PRESET_USES.items()) + "."),
    PanelField("base_model", "Base model", "select",
               "The model you fine-tune; automatic picks the best one this machine trains in time."),
    PanelField("base_path", "Or a model you already have", "text",
               "A model folder or .gguf file on this machine (its path), or a model in your Ollama (its name, e.g. "
               "smollm2:135m): nothing to download."),
    PanelField("epochs", "Epochs", "number",
               "Passes over your examples: 1–2 for tiny data, 3 usual, 5–10 for large or complex data."),
    PanelField("learning_rate", "Learning rate", "text",
               "Step size: 1e-4 careful, 2e-4 usual, 5e-4 fast with a risk of overfitting."),
    PanelField("max_steps", "Max steps (0 = whole epochs)", "number",
               "Stop after this many steps, whatever the epochs say — for a quick try."),
    PanelField("batch_size", "Batch size", "select", "Examples per step: 1–2 on little memory, 8–16 with more.",
               ("1", "2", "4", "8", "16")),
    PanelField("context", "Context (tokens)", "select", "The longest example in tokens; longer ones are cut.",
               ("1024", "2048", "4096", "8192")),
    PanelField("lora_r", "LoRA rank", "select",
               "Size of what the model learns: higher learns more and needs more memory.",
               ("4", "8", "16", "32", "64")),
)
"""The settings panel, top to bottom: every setting, and the base model by its path."""


@dataclass(frozen=True)
class Destination:
    """A step a message may ask to go to."""

    phrase: str
    """A regex for a message that asks for it ("back to the dataset", "start over")."""
    words: tuple[str, ...]
    """A message must contain one of these for the assistant model's reading "go to <target>" to be believed."""


DESTINATIONS: dict[Target, Destination] = {
    "start_over": Destination(r"\b(start over|start again|from scratch|new (model|project)|another (model|project))\b",
                              ("start", "over", "new", "again", "scratch", "fresh")),
    "models": Destination(r"\b(my models|list (the |my )?models|registered models)\b", ("model",)),
    "dataset": Destination(r"\b(back to|go to|return to|change|redo|show)\b.*\b(data ?set|examples|data|upload)\b",
                           ("data", "example", "upload", "file")),
    "interview": Destination(r"\b(back to|go to|return to|redo|change)\b.*\b(interview|project|spec|purpose|audience|"
                             r"style)\b", ("interview", "project", "spec", "purpose", "audience", "style", "describ",
                                           "rules")),
    "plan": Destination(r"\b(back to|go to|return to|show)\b.*\b(plan|settings|configur\w*)\b",
                        ("plan", "setting", "configur", "train")),
    "evaluate": Destination(r"\b(back to|go to)\b.*\b(evaluat\w*|comparison|compare)\b",
                            ("evaluat", "compar", "score", "test")),
    "deploy": Destination(r"\b(back to|go to)\b.*\b(export|deploy\w*|ollama)\b",
                          ("export", "deploy", "ollama", "ship")),
}
"""Every step, in the order the parser tries their phrases: the most specific first ("start over with a new
dataset" starts over)."""
