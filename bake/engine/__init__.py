"""Everything that talks to the docker CLI and buildx, on top of one process runner."""
