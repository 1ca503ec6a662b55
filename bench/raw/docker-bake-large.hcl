# The "raw bake" contender for bench/fixture-large (8 chained stages x 2 Pythons): the same
# 16 images as `bake-ci build --push`, written by hand the plain way: one tag per image
# (the branch's) and one registry cache ref per target, imported and exported (mode=max).
# Run from the project directory:
#
#   REGISTRY=localhost:5000/ns BRANCH=main \
#     docker buildx bake -f /path/to/bench/raw/docker-bake-large.hcl

variable "REGISTRY" {
  default = "localhost:5000/bench"
}

variable "IMAGE" {
  default = "bench/chain-ci"
}

variable "BRANCH" {
  default = "main"
}

# {python} is replaced by each target's Python version.
variable "BASE_IMAGE" {
  default = "localhost:5000/library/python:{python}-slim"
}

group "default" {
  targets = ["image"]
}

target "image" {
  name = "${stage}-py${replace(py, ".", "")}"
  matrix = {
    stage = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]
    py    = ["3.11", "3.13"]
  }
  context    = "."
  dockerfile = "Dockerfile"
  target     = stage
  args = {
    BASE_IMAGE     = replace(BASE_IMAGE, "{python}", py)
    PYTHON_VERSION = py
  }
  tags       = ["${REGISTRY}/${IMAGE}:${stage}-py${py}-${BRANCH}"]
  cache-from = ["type=registry,ref=${REGISTRY}/${IMAGE}-cache:${stage}-py${py}-${BRANCH}"]
  cache-to   = ["type=registry,ref=${REGISTRY}/${IMAGE}-cache:${stage}-py${py}-${BRANCH},mode=max,ignore-error=true"]
  output     = ["type=registry"]
}
