"""Training: config (YAML onto dataclasses), assembling a network and its process, the loop, checkpoints, EMA,
batches, distributed helpers, and drawing samples from a trained checkpoint (:mod:`.sampling`)."""
