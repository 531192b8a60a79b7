"""Command-line entry points and the shared option layer (flags with ECG_MONITOR_* fallbacks)."""
