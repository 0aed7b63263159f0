"""The model as an object to inspect and change: architecture facts, parameter counts, freezing, quantization,
precision, the memory estimate and the fit verdict, the layer tree and the summary."""
