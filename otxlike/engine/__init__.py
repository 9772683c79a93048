"""Train and evaluate a workspace with mmengine's Runner."""
