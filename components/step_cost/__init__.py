"""Step cost: what one training step of each optimizer costs, timed alone and interleaved."""
