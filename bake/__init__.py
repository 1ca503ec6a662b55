"""bake-ci: bake Python CI images per Dockerfile stage and Python version with docker buildx bake."""

__version__ = "0.1.0"
