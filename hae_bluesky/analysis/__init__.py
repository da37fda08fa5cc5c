"""Reading stored runs back, metrics of an experiment, trap detection and feature space."""
