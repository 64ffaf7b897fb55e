"""Experiment files: schema (schema.py), safe loading with positions (yamlpos.py),
validation and expansion into run specs (load.py), deep checks (checks.py)."""
