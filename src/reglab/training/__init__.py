"""Training one run (``run``: the data split, the learner, the epoch loop, the run around them) or
k seeds as one stack (``stack``), with its losses, optimizers, schedules, early stopping and weight
averages."""
