"""Test doubles for the boundaries we cannot reach offline."""
