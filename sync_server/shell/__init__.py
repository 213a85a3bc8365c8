"""The shell around it all: the app factory, the CLI, settings, logging."""
