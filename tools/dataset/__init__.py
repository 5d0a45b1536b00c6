"""Datasets: read every format users bring, check them in plain language, fix, version, draft."""
