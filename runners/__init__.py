"""Runner profiles, the local development stack and the ``kappa`` command line."""
