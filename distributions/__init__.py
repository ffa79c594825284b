"""The distributions app."""
