"""PyTorch twins of the toolkit's reference models, and the helpers the PyTorch tooling shares."""
