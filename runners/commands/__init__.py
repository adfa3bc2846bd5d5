"""The ``kappa`` commands, one module each: ``plan``, ``read``, ``run`` (replay,
live; their flags in ``run_flags``), ``verify``, ``produce``, ``local``, ``demo``.
``kappa.runners.cli`` puts them together. ``plan``, ``verify``, ``produce`` and
``local`` import no Beam, so they start in a fraction of a second."""
