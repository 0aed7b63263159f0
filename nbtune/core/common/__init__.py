"""Leaf helpers every layer may use: errors, seeding, interrupt deferral, change notification, output guards, the
version and the embedded default model. They import nothing else of nbtune."""
