"""Export, optimize and predict: a trained workspace as a model that runs without torch."""
