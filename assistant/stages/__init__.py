"""One module per journey stage: onboard, interview, dataset, train, evaluate, deploy."""
