"""Trainers: typed configs, the generic loop (train, evaluate, predict, export), checkpoints, logs,
the runtime, and the task families (:mod:`videotk.trainers.tasks`) that tie caches to models."""
