"""Trainers: datasets over caches (paddle.io), configs, the training loop, checkpoints."""
