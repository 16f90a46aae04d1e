"""Out-of-sample validation: LOO, WAIC, k-fold and leave-one-group-out."""
