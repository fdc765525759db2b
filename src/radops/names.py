"""Names every layer may need without loading the config's models (pydantic)."""

LOCAL_EXECUTOR_NAME = "local"  # the built-in executor: this machine's engine, no settings
