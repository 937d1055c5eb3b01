"""The pipeline: its settings (config.py), definition (definition.py) and the user code it runs
(user_code.py)."""
