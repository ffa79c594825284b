"""Workflows, Salesforce events, runs, the engine and its task types."""
