"""Small statistics helpers for text and numbers."""
