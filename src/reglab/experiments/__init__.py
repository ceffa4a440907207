"""Many runs on one queue: the engine on Optuna storage (``engine``), studies (arms x seeds,
``study``) and sweeps (a search space, ``search_space``, ``sweep``), the statistics of a study's
table (``stats``) and the table itself (``table``)."""
