"""Templates, workspace scaffolding, the manifest and data.yaml."""
