"""The surveys app."""
