"""The user-facing façades :class:`~bayesmix.Model` and :class:`~bayesmix.FitResult`."""
