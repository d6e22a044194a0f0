"""Admin classes of the engine, one module per concern."""
