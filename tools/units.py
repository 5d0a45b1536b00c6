"""The one way durations and byte counts are written for a person: "about 12 minutes", "7.7 GB"."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Bytes in the units a download page uses: 512 B, 12.3 kB, 988 MB, 7.7 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def human_mb(mb: float) -> str:
    """A size measured in MiB (what torch and psutil report), written like any other byte count."""
    return human_bytes(mb * 2**20)


def human_duration(seconds: float) -> str:
    """A wait in the unit a person plans with: about 40 seconds, about 12 minutes, about 2.5 hours."""
    if seconds < 1.5:
        return "about 1 second"
    if seconds < 90:
        return f"about {round(seconds)} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"
