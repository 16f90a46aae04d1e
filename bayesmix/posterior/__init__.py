"""What the posterior says: predictions, effects, variance decompositions, hypotheses."""
