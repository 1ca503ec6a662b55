# The "raw bake" contender of bench/run.py: the bench fixture's CI images written by hand
# as a bake matrix, with the same registry cache, tags and outputs as `bake-ci build --push`
# (minus bake-ci's fingerprint tag and labels). Run from the project directory:
#
#   REGISTRY=localhost:5000/ns BRANCH=main SHA=$(git rev-parse HEAD) \
#     docker buildx bake -f /path/to/bench/raw/docker-bake.hcl
#
# Every target imports the cache of its branch, then of the default branch, then the
# default branch's image (inline cache), and exports mode=max cache to its branch's ref
# plus inline cache in the pushed image.

variable "REGISTRY" {
  default = "localhost:5000/bench"
}

variable "IMAGE" {
  default = "bench/app-ci"
}

variable "BRANCH" {
  default = "main"
}

variable "DEFAULT_BRANCH" {
  default = "main"
}

variable "SHA" {
  default = ""
}

# {python} is replaced by each target's Python version.
variable "BASE_IMAGE" {
  default = "localhost:5000/library/python:{python}-slim"
}

function "ref" {
  params = [stage, py, suffix]
  result = "${REGISTRY}/${IMAGE}:${stage}-py${py}${suffix}"
}

function "cache_ref" {
  params = [stage, py, branch]
  result = "${REGISTRY}/${IMAGE}-cache:${stage}-py${py}-${branch}"
}

group "default" {
  targets = ["image"]
}

target "image" {
  name = "${stage}-py${replace(py, ".", "")}"
  matrix = {
    stage = ["deps", "ci"]
    py    = ["3.11", "3.13"]
  }
  context    = "."
  dockerfile = "Dockerfile"
  target     = stage
  args = {
    BASE_IMAGE     = replace(BASE_IMAGE, "{python}", py)
    PYTHON_VERSION = py
  }
  tags = concat(
    [ref(stage, py, "-${BRANCH}")],
    SHA != "" ? [ref(stage, py, "-${substr(SHA, 0, 7)}")] : [],
    BRANCH == DEFAULT_BRANCH ? [ref(stage, py, "")] : [],
  )
  cache-from = concat(
    [for r in distinct([cache_ref(stage, py, BRANCH), cache_ref(stage, py, DEFAULT_BRANCH)]) : "type=registry,ref=${r}"],
    ["type=registry,ref=${ref(stage, py, "")}"],
  )
  cache-to = [
    "type=registry,ref=${cache_ref(stage, py, BRANCH)},mode=max,ignore-error=true",
    "type=inline",
  ]
  output = ["type=registry"]
}
