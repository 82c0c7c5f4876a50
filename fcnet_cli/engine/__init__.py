"""The training engine: data, model, population, optimizers and schedules, the training loop,
evaluation, run directories and checkpoints. Never prints, never exits; reports through
`fcnet_cli.events` callbacks and raises `fcnet_cli.errors`."""
