"""The ``kappa`` commands, one module each: ``plan_read`` (plan, read), ``run`` (replay,
live; their flags in ``run_flags``), ``verify``, ``produce``, ``local``, ``demo``.
``kappa.runners.cli`` puts them together."""
