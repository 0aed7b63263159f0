"""The training engine: configuration, data, the accelerate loop, events and callbacks, checkpoints."""
