"""Troubleshooting: the health monitor and the knowledge base, in plain words."""
