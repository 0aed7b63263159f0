"""Data before it reaches a task: readers (files, tables, datasets), encoded features, chat rendering with loss
masks, batching and packing."""
