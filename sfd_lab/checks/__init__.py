"""Learning checks: does SFD learn? Discriminator and generator checks on held-out photos, and the
quality-aware tiny CLIP (trained here) they can use instead of random weights."""
