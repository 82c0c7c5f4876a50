"""Training: the population and its steps, optimizers and schedules, the loop, the default
rule, resources, seed groups and ensembles.

    cpus         how many CPU threads torch should use
    defaults     the data-aware default rule (torch-free)
    device       which torch device a run trains on (training.device resolved)
    diversity    a selected ensemble's hyperparameter distribution (torch-free)
    ensemble     model.ensemble: N members trained as one population, kept as one model
    finish       a member's checkpoints, progress and final record (its test metrics)
    graphs       the CUDA epoch: no host sync, each step one CUDA graph replay
    group        training.seeds: N seeds trained as one population, in a group folder
    kernels      each piece of maths once: activations, affine, dropout, penalty, CE, F1
    loop         the training loop, one loop for K = 1 and for K members
    losses       per-member losses and epoch metrics
    lrfind       the learning-rate range test (fcnet lr-find)
    members      per-member bookkeeping: generators, best state, plateau, early stopping
    memory       how much memory a population needs, checked before allocating
    optim        per-member optimizer updates (functions of the state) and lr schedules
    population   K MLPs of one layout as stacked tensors, trained in lock-step
    select       greedy ensemble selection with replacement on the validation split (numpy)
    shared       model.ensemble_kind: shared: the weight-sharing ensemble, trained with autograd
    sharedstep   its step: torch.optim optimizer, per-member loss, one update
    state        PopulationState: everything indexed by member, its one compact/save/restore
    steps        one training step's forward and backward: by hand or by autograd
    tensorboard  optional TensorBoard event files of metrics.csv's scalars
"""

__all__ = [
    "cpus",
    "defaults",
    "device",
    "diversity",
    "ensemble",
    "finish",
    "graphs",
    "group",
    "kernels",
    "loop",
    "losses",
    "lrfind",
    "members",
    "memory",
    "optim",
    "population",
    "select",
    "shared",
    "sharedstep",
    "state",
    "steps",
    "tensorboard",
]
